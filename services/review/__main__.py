"""``python -m services.review``: run the review service (Kafka consumer, outbox relay and HTTP API)."""

import logging

import uvicorn

from services.review.app import create_app
from services.review.settings import KafkaSettings, MongoSettings, ReviewSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ReviewSettings()
    uvicorn.run(
        create_app(KafkaSettings(), MongoSettings(), settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
    )


if __name__ == "__main__":
    main()
