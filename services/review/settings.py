"""Review configuration: shared connection settings plus ``REVIEW_``-prefixed ones."""

from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import dlq_topic_for


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"


class MongoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MONGODB_")

    uri: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    database: str = "incident_lessons"


class ReviewSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REVIEW_")

    closed_topic: str = "incidents.closed"
    events_topic: str = "reviews.events"
    group_id: str = "lessons-review"
    http_host: str = "127.0.0.1"
    http_port: int = 8082
    # A record that keeps failing for a reason other than an unreachable database goes to the DLQ after this.
    max_attempts: int = 5
    retry_backoff_seconds: float = 0.5
    outbox_poll_seconds: float = 1.0
    outbox_batch_size: int = 100
    shutdown_timeout_seconds: float = 20.0

    @property
    def dlq_topic(self) -> str:
        return dlq_topic_for(self.closed_topic)
