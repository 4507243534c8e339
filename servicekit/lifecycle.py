"""Start-up that survives an absent broker, and the MongoDB client every service opens the same way."""

import asyncio
import contextlib
import logging
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from servicekit.failures import describe, is_outage
from servicekit.kafka_connection_check import KafkaConnectionRefusedError, check_kafka_connection
from servicekit.kafka_settings import KafkaSettings
from servicekit.mongo_settings import MongoSettings

log = logging.getLogger(__name__)

FIRST_PAUSE_SECONDS = 1.0
LONGEST_PAUSE_SECONDS = 30.0


def mongo_client(settings: MongoSettings) -> AsyncMongoClient[dict[str, Any]]:
    """Offset-aware times; connects on first use, so a service starts while the database is still coming up."""
    return AsyncMongoClient(settings.uri.get_secret_value(), tz_aware=True, connect=False)


async def explain_refusal(settings: KafkaSettings) -> None:
    """Log why Kafka refuses us when it says so (wrong password, untrusted CA): aiokafka only says it failed."""
    try:
        await check_kafka_connection(settings, timeout_seconds=5.0)
    except KafkaConnectionRefusedError as exc:
        log.error("Kafka refuses the connection: %s", exc)  # noqa: TRY400 (the cause is the message)
    except Exception as exc:
        log.warning("could not tell why Kafka is unreachable: %s", describe(exc))


async def start_when_reachable(
    broker: KafkaBroker,
    settings: KafkaSettings,
    *,
    first_pause: float = FIRST_PAUSE_SECONDS,
    longest_pause: float = LONGEST_PAUSE_SECONDS,
) -> None:
    """Start the broker, waiting for Kafka with growing pauses while it is unreachable (``/readyz`` says so).

    A service started before its broker (a restart of the whole stack, a broker being replaced) comes up and starts
    consuming when Kafka answers, instead of exiting and relying on a supervisor to loop.
    """
    pause = first_pause
    while True:
        try:
            await broker.start()
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("Kafka is not reachable (%s); trying again in %.0fs", describe(exc), pause)
            with contextlib.suppress(Exception):
                await broker.stop()
            await explain_refusal(settings)
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest_pause)
        else:
            log.info("connected to Kafka")
            return


class BrokerStarter:
    """Starts the broker in the background at start-up and stops it (or the waiting) at shutdown."""

    def __init__(self, broker: KafkaBroker, settings: KafkaSettings) -> None:
        self._broker = broker
        self._settings = settings
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start now when Kafka answers (the usual case: consuming has begun on return), else keep trying behind."""
        try:
            await self._broker.start()
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("Kafka is not reachable at start-up (%s); waiting for it in the background", describe(exc))
            with contextlib.suppress(Exception):
                await self._broker.stop()
            await explain_refusal(self._settings)
            self._task = asyncio.create_task(start_when_reachable(self._broker, self._settings), name="kafka-start")

    async def started(self) -> None:
        """Wait until the broker runs (tests and tools that need it consuming)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Finish the in-flight batch and commit it, then close the broker's clients."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._broker.stop()
