"""``python -m services.ingest``: run the ingest service (Kafka consumer plus its HTTP surface)."""

import logging
import sys

from servicekit.runner import serve
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings, KafkaSettings, MongoSettings
from services.ingest.webhooks import WebhookSettings


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if argv[:1] == ["check"]:
        from services.ingest.check import main as check

        return check(argv[1:])
    settings = IngestSettings()
    app = create_app(KafkaSettings(), settings, MongoSettings(), WebhookSettings())
    return serve(
        app,
        host=settings.http_host,
        port=settings.http_port,
        shutdown_timeout_seconds=settings.shutdown_timeout_seconds,
        read_timeout_seconds=settings.http_read_timeout_seconds,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
