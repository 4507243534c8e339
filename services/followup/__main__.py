"""``python -m services.followup``: run the follow-up service (Kafka consumer plus metrics over HTTP)."""

import sys

from servicekit.runner import configure_logging, serve_service
from services.followup.app import create_app
from services.followup.settings import FollowupSettings, KafkaSettings, MongoSettings


def main() -> None:
    configure_logging()
    settings = FollowupSettings()
    sys.exit(serve_service(create_app(KafkaSettings(), MongoSettings(), settings), settings))


if __name__ == "__main__":
    main()
