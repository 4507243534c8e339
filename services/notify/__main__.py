"""``python -m services.notify``: run the notify service (Kafka consumers, message dispatch, metrics over HTTP)."""

import logging
import sys

from servicekit.runner import serve
from services.notify.app import create_app
from services.notify.settings import KafkaSettings, MongoSettings, NotifySettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = NotifySettings()
    sys.exit(
        serve(
            create_app(KafkaSettings(), MongoSettings(), settings),
            host=settings.http_host,
            port=settings.http_port,
            shutdown_timeout_seconds=settings.shutdown_timeout_seconds,
            read_timeout_seconds=settings.http_read_timeout_seconds,
        )
    )


if __name__ == "__main__":
    main()
