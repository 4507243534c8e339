"""Ingest configuration from the environment: shared connection settings plus ``INGEST_``-prefixed ones."""

import json
from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from schemas import Severity, dlq_topic_for
from servicekit.kafka_settings import KafkaSettings
from servicekit.mongo_settings import MongoSettings
from servicekit.service_settings import ServiceSettings
from services.ingest.domain.config import DEFAULT_MAX_INCIDENT_BYTES, NormalisationConfig

__all__ = ["IngestSettings", "KafkaSettings", "MongoSettings"]


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_")

    raw_topic: str = "incidents.raw"
    closed_topic: str = "incidents.closed"
    group_id: str = "lessons-ingest"
    http_port: int = Field(default=8081, ge=1, le=65_535)
    # {"pagerduty": {"P1": "critical"}, ...}: consulted before the built-in tables.
    severity_overrides: dict[str, dict[str, Severity]] = Field(default_factory=dict)
    zabbix_timezone: str = "UTC"
    # The same incident closed again within this window (vendor retries, two webhooks) is published once.
    dedup_window_seconds: int = Field(default=86_400, ge=1)
    # A normalised incident larger than this is refused as invalid (DLQ): it must fit a Kafka record with room left
    # for headers, the DLQ's headers, and review's documents that embed it.
    max_incident_bytes: int = Field(default=DEFAULT_MAX_INCIDENT_BYTES, ge=4_096, le=900_000)

    @property
    def dlq_topic(self) -> str:
        return dlq_topic_for(self.raw_topic)

    @field_validator("severity_overrides", mode="before")
    @classmethod
    def _parse_json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("zabbix_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def normalisation(self) -> NormalisationConfig:
        zone: tzinfo = ZoneInfo(self.zabbix_timezone)
        return NormalisationConfig(
            severity_overrides=self.severity_overrides,
            zabbix_timezone=zone,
            max_incident_bytes=self.max_incident_bytes,
        )
