"""A real MongoDB-compatible database per test, dropped afterwards."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase


@asynccontextmanager
async def scratch_database(uri: str, name: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()
