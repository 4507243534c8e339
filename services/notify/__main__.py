"""``python -m services.notify``: run the notify service (Kafka consumers, message dispatch, metrics over HTTP)."""

import sys

from servicekit.runner import configure_logging, serve_service
from services.notify.app import create_app
from services.notify.settings import KafkaSettings, MongoSettings, NotifySettings


def main() -> None:
    configure_logging()
    settings = NotifySettings()
    sys.exit(serve_service(create_app(KafkaSettings(), MongoSettings(), settings), settings))


if __name__ == "__main__":
    main()
