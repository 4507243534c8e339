"""``python -m services.ingest``: run the ingest service (Kafka consumer plus its HTTP surface)."""

import sys

from servicekit.runner import configure_logging, serve_service
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings, KafkaSettings, MongoSettings
from services.ingest.webhooks import WebhookSettings


def main(argv: list[str]) -> int:
    configure_logging()
    if argv[:1] == ["check"]:
        from services.ingest.check import main as check

        return check(argv[1:])
    settings = IngestSettings()
    app = create_app(KafkaSettings(), settings, MongoSettings(), WebhookSettings())
    return serve_service(app, settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
