"""The shared plumbing on its own: settings bounds, retries, failure classes, header decoding, poll interval, sweeps."""

import asyncio
import gc
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from pymongo.errors import AutoReconnect, DuplicateKeyError, ExecutionTimeout

from servicekit.batches import GuardedBatches, max_poll_interval_for, max_poll_interval_ms, tolerant_batch_parser
from servicekit.dead_letters import DeadLetterMetrics, DeadLetters
from servicekit.failures import describe, is_outage
from servicekit.headers import encodable, text_headers
from servicekit.passes import repeat_passes
from servicekit.retries import with_bounded_retries
from servicekit.runner import YOUNG_OBJECTS_BEFORE_COLLECTION, settle_heap
from services.followup.settings import FollowupSettings
from services.ingest.settings import IngestSettings
from services.review.settings import ReviewSettings

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_the_poll_interval_outlasts_a_batch_of_records_that_all_fail() -> None:
    # Defaults: 100 records, 5 attempts, pauses of 0.5+1+1.5+2 s between them, 1 s allowed per attempt.
    assert max_poll_interval_ms(100, 5, 0.5) == 100 * (5.0 + 5 * 1.0) * 1000
    assert max_poll_interval_ms(1, 1, 0.0) == 300_000  # never below Kafka's default
    assert ReviewSettings().batch_max_records == 100
    assert FollowupSettings().batch_max_records == 100


def test_the_poll_interval_allows_each_attempt_what_bounds_it() -> None:
    # Review opens a review in a transaction that may take up to its time limit (10 s by default) before it fails.
    assert max_poll_interval_for(ReviewSettings()) == 100 * (5.0 + 5 * 10.0) * 1000
    assert max_poll_interval_for(ReviewSettings(transaction_time_limit_seconds=30)) == 100 * (5.0 + 5 * 30.0) * 1000
    assert max_poll_interval_for(ReviewSettings(transaction_time_limit_seconds=0.2)) == 100 * (5.0 + 5 * 1.0) * 1000
    # Follow-up and ingest have no longer time limit than a few round trips: 1 s per attempt.
    assert max_poll_interval_for(FollowupSettings()) == 100 * (5.0 + 5 * 1.0) * 1000
    assert max_poll_interval_for(IngestSettings(batch_max_records=1_000)) == 1_000 * (5.0 + 5 * 1.0) * 1000


@pytest.mark.parametrize("settings", [IngestSettings, ReviewSettings, FollowupSettings])
def test_zero_attempts_is_refused_at_start_up_naming_the_setting(
    settings: type[ReviewSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = settings.model_config["env_prefix"]
    monkeypatch.setenv(f"{prefix}MAX_ATTEMPTS", "0")
    with pytest.raises(ValidationError, match="max_attempts"):
        settings()


def test_outages_are_told_apart_from_a_record_s_own_problems() -> None:
    assert is_outage(AutoReconnect("connection refused"))
    assert is_outage(KafkaConnectionError("no broker"))
    assert is_outage(TimeoutError())
    assert is_outage(ExecutionTimeout("operation exceeded time limit", code=50))
    assert not is_outage(MessageSizeTooLargeError("too large"))
    assert not is_outage(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
    assert not is_outage(DuplicateKeyError("E11000"))
    assert not is_outage(RuntimeError("a bug"))


def test_a_reason_is_one_bounded_line() -> None:
    reason = describe(ValueError("line one\nline two " + "x" * 10_000), limit=100)
    assert "\n" not in reason
    assert reason.startswith("ValueError: line one line two")
    assert reason.endswith("(10030 characters)")
    assert len(reason) < 130


async def test_bounded_retries_end_with_the_last_failure_and_never_retry_an_outage() -> None:
    calls: list[int] = []

    async def always_fails() -> None:
        calls.append(1)
        raise RuntimeError("a bug")

    attempted = await with_bounded_retries(always_fails, 3, 0.0)
    assert (attempted.attempts, repr(attempted.failure)) == (3, "RuntimeError('a bug')")
    assert len(calls) == 3

    async def unreachable() -> None:
        calls.append(1)
        raise AutoReconnect("down")

    with pytest.raises(AutoReconnect):
        await with_bounded_retries(unreachable, 3, 0.0)
    assert len(calls) == 4  # tried once: an outage is the batch's problem, not the record's


def test_headers_that_are_not_utf8_are_kept_with_replacement_characters() -> None:
    assert text_headers([("Source", b"generic"), ("X-Bad", b"\xff\xfe"), ("Empty", None)]) == {
        "source": "generic",
        "x-bad": "\ufffd\ufffd",
        "empty": "",
    }
    assert encodable({"dlq-reason": "bad \ud800 text"}) == {"dlq-reason": "bad \\ud800 text"}


async def test_the_batch_parser_gets_decodable_headers_and_the_handler_the_records_as_they_came() -> None:
    def record(offset: int, headers: list[tuple[str, bytes | None]]) -> ConsumerRecord[bytes, bytes]:
        return ConsumerRecord("t", 0, offset, 0, 0, None, b"{}", None, 0, 2, headers)

    fine, bad, empty = record(0, [("source", b"generic")]), record(1, [("x", b"\xff")]), record(2, [("x", None)])
    parsed: list[tuple[ConsumerRecord[bytes, bytes], ...]] = []

    async def faststream_parser(records: tuple[ConsumerRecord[bytes, bytes], ...]) -> StreamMessage[Any]:
        parsed.append(records)
        return StreamMessage(raw_message=records, body=b"", headers={})

    message = await tolerant_batch_parser((fine, bad, empty), faststream_parser)

    (given,) = parsed
    assert given[0] is fine  # not copied: nothing to fix
    assert [r.headers for r in given[1:]] == [[("x", "\ufffd".encode())], [("x", b"")]]
    assert message.raw_message == (fine, bad, empty)


def test_settling_the_heap_freezes_what_exists_and_lets_batches_allocate_before_a_collection() -> None:
    before = gc.get_threshold()
    kept_for_the_process = type("StartUpObject", (), {})()
    assert any(found is kept_for_the_process for found in gc.get_objects())
    try:
        settle_heap()
        # Out of every generation the collector walks (frozen), though still tracked.
        assert gc.is_tracked(kept_for_the_process)
        assert not any(found is kept_for_the_process for found in gc.get_objects())
        assert gc.get_threshold() == (YOUNG_OBJECTS_BEFORE_COLLECTION, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


class PublishedCopies:
    """A broker whose publishes are the DLQ copies, kept in order."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    async def publish(self, value: bytes, **_: Any) -> None:
        self.values.append(value)


class DeadLetteringThenFailing:
    """Dead-letters its first record, then fails on the second with what ``failures`` holds (until it is empty)."""

    def __init__(self, dead_letters: DeadLetters, failures: list[Exception]) -> None:
        self._dead_letters = dead_letters
        self.failures = failures

    async def process(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        for record in records:
            if record.offset == 0:
                await self._dead_letters.send(record, "not parseable")
            elif self.failures:
                raise self.failures.pop(0)


def dlq_harness(failures: list[Exception]) -> tuple[GuardedBatches, PublishedCopies]:
    broker = PublishedCopies()
    registry = CollectorRegistry()
    dead_letters = DeadLetters(
        cast("KafkaBroker", broker), "t.dlq", failed_by="test", clock=lambda: NOW, metrics=DeadLetterMetrics(registry)
    )
    handler = DeadLetteringThenFailing(dead_letters, failures)
    return GuardedBatches(handler, dead_letters, outage_pause_seconds=0.0), broker


def batch_of(*values: bytes) -> tuple[ConsumerRecord[bytes, bytes], ...]:
    return tuple(
        ConsumerRecord("t", 0, n, 0, 0, None, value, None, 0, len(value), []) for n, value in enumerate(values)
    )


async def test_a_batch_rewound_by_an_outage_sends_its_dead_letters_once_when_it_finally_takes_effect() -> None:
    guarded, broker = dlq_harness([AutoReconnect("database unreachable")])
    records = batch_of(b"{bad", b"fine")

    with pytest.raises(AutoReconnect):
        await guarded.process(records)
    assert broker.values == []  # held, then dropped with the rewound batch

    await guarded.process(records)  # redelivered
    assert broker.values == [b"{bad"]


async def test_a_batch_handled_again_record_by_record_sends_each_dead_letter_once() -> None:
    guarded, broker = dlq_harness([RuntimeError("a bug"), RuntimeError("a bug")])

    await guarded.process(batch_of(b"{bad", b"buggy"))

    # The first try's copy of {bad was dropped with it; record by record, {bad once, then the record that failed.
    assert broker.values == [b"{bad", b"buggy"]


async def test_repeat_passes_drains_a_backlog_at_once_survives_a_failure_and_stops() -> None:
    stopping, wake = asyncio.Event(), asyncio.Event()
    handled = iter([10, 10, 3])  # two full batches, then less than a batch: wait
    failures: list[tuple[str, float]] = []
    passes = 0

    async def one_pass() -> int:
        nonlocal passes
        passes += 1
        if passes == 4:
            raise RuntimeError("database blip")
        if passes == 5:
            stopping.set()  # as a service's stop() does: stop, and wake the loop if it waits
            wake.set()
            return 0
        return next(handled)

    def failed(exc: Exception, wait: float) -> None:
        failures.append((str(exc), wait))
        wake.set()  # the pass after a failure comes at the next wake-up

    task = asyncio.create_task(
        repeat_passes(one_pass, batch_size=10, interval_seconds=30, stopping=stopping, on_failure=failed, wake=wake)
    )
    await asyncio.sleep(0)
    for _ in range(20):
        await asyncio.sleep(0)
    assert passes == 3  # two full batches went on at once; the short one waits for the interval or a wake-up
    wake.set()
    await asyncio.wait_for(task, timeout=5)
    assert passes == 5
    assert failures == [("database blip", 30)]
