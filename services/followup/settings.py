"""Follow-up configuration: shared connection settings plus ``FOLLOWUP_``-prefixed ones."""

from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import dlq_topic_for


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"


class MongoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MONGODB_")

    uri: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    database: str = "incident_lessons"


class FollowupSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FOLLOWUP_")

    review_events_topic: str = "reviews.events"
    group_id: str = "lessons-followup"
    http_host: str = "127.0.0.1"
    http_port: int = 8083
    shutdown_timeout_seconds: float = 20.0

    @property
    def dlq_topic(self) -> str:
        return dlq_topic_for(self.review_events_topic)
