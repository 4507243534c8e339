"""How every service connects to Kafka (``KAFKA_`` settings)."""

from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``KafkaBroker`` (and aiokafka clients) that carry the connection settings."""
        return {}
