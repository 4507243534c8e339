"""Fixtures the integration tests share: a scratch database and ingest's topics, unique to each test."""

from collections.abc import AsyncIterator

import pytest

from services.ingest.settings import IngestSettings, MongoSettings
from tests.conftest import Servers
from tests.support.kafka import create_topics
from tests.support.mongo import scratch_database


@pytest.fixture
async def mongo(servers: Servers, unique: str) -> AsyncIterator[MongoSettings]:
    async with scratch_database(servers.mongodb_uri, f"it_{unique}") as db:
        yield MongoSettings(uri=servers.mongodb_uri, database=db.name)


@pytest.fixture
async def ingest_settings(servers: Servers, unique: str) -> IngestSettings:
    settings = IngestSettings(
        raw_topic=f"incidents.raw.{unique}", closed_topic=f"incidents.closed.{unique}", group_id=f"ingest-{unique}"
    )
    await create_topics(servers.kafka_bootstrap, settings.raw_topic, settings.closed_topic, settings.dlq_topic)
    return settings
