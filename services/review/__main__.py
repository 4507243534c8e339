"""``python -m services.review``: run the review service (Kafka consumer, outbox relay and HTTP API).

A bad policy file or token setting stops it before it connects anywhere: exit status 2 and one line on stderr that
names the file or setting and the field.
"""

import sys

from servicekit.runner import configure_logging, serve_service
from services.review.app import create_app
from services.review.auth import TokenSettingError
from services.review.domain.policy import PolicyError
from services.review.settings import KafkaSettings, MongoSettings, ReviewSettings

CONFIGURATION_ERROR = 2


def main() -> None:
    configure_logging()
    settings = ReviewSettings()
    try:
        app = create_app(KafkaSettings(), MongoSettings(), settings)
    except (PolicyError, TokenSettingError) as exc:
        print(f"review: cannot start: {exc}", file=sys.stderr)
        sys.exit(CONFIGURATION_ERROR)
    sys.exit(serve_service(app, settings))


if __name__ == "__main__":
    main()
