"""The webhook receiver: ``POST /webhooks/{source}`` writes a tool's body, unchanged, to ``incidents.raw``.

Wire it in ``services/ingest/app.py`` with ``create_webhook_router(WebhookSettings(), KafkaRawPublisher(broker,
settings.raw_topic), metrics.registry)``; see ``docs/webhooks.md`` for each tool's setup.
"""

from services.ingest.webhooks.publisher import KafkaRawPublisher, RawPublisher
from services.ingest.webhooks.router import create_webhook_router
from services.ingest.webhooks.settings import WebhookSettings

__all__ = ["KafkaRawPublisher", "RawPublisher", "WebhookSettings", "create_webhook_router"]
