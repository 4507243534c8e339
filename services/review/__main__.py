"""``python -m services.review``: run the review service (Kafka consumer, outbox relay and HTTP API).

A bad policy file or token setting stops it before it connects anywhere: exit status 2 and one line on stderr that
names the file or setting and the field.
"""

import logging
import sys

from servicekit.runner import serve
from services.review.app import create_app
from services.review.auth import TokenSettingError
from services.review.domain.policy import PolicyError
from services.review.settings import KafkaSettings, MongoSettings, ReviewSettings

CONFIGURATION_ERROR = 2


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ReviewSettings()
    try:
        app = create_app(KafkaSettings(), MongoSettings(), settings)
    except (PolicyError, TokenSettingError) as exc:
        print(f"review: cannot start: {exc}", file=sys.stderr)
        sys.exit(CONFIGURATION_ERROR)
    sys.exit(
        serve(
            app,
            host=settings.http_host,
            port=settings.http_port,
            shutdown_timeout_seconds=settings.shutdown_timeout_seconds,
            read_timeout_seconds=settings.http_read_timeout_seconds,
        )
    )


if __name__ == "__main__":
    main()
