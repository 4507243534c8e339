"""The one way a service builds its Kafka broker: durable writes, its metrics, its connection settings."""

from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry

from servicekit.kafka_settings import KafkaSettings

# The largest record a producer sends (aiokafka's default, under the broker's default message.max.bytes): limits
# that admit input (webhook bodies, normalised incidents) must leave room for key and headers under it.
RECORD_LIMIT_BYTES = 1_048_576


def create_broker(
    kafka: KafkaSettings, *, client_id: str, registry: CollectorRegistry, graceful_timeout: float
) -> KafkaBroker:
    """Producers wait for every in-sync replica (``acks="all"``) and are idempotent: no loss, no duplicate on retry."""
    return KafkaBroker(
        kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        max_request_size=RECORD_LIMIT_BYTES,
        client_id=f"lessons-{client_id}",
        graceful_timeout=graceful_timeout,
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=client_id)],
        **kafka.client_options(),
    )
