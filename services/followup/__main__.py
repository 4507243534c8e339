"""``python -m services.followup``: run the follow-up service (Kafka consumer plus metrics over HTTP)."""

import logging
import sys

from servicekit.runner import serve
from services.followup.app import create_app
from services.followup.settings import FollowupSettings, KafkaSettings, MongoSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = FollowupSettings()
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
