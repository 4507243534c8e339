"""Sends queued messages when they are due: at once, after quiet hours, or as a digest at the end of its period.

Each pass claims due messages with a lease (one message, or all of one digest), sends, then marks them sent. A
failure is tried again later with exponential backoff, up to ``max_attempts``; a refusal that cannot change (bad
address, 4xx) or the last failed attempt dead-letters the event's original record with the reason and marks the
message ``failed``. The partition never waits on any of this: events were committed once their messages were queued.

``dispatch_due(now)`` is the whole algorithm and takes the time as an argument: tests call it with an injected
clock; ``run`` calls it every interval, and at once when the consumer queues something (``wake``).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from servicekit.clock import Clock
from servicekit.dead_letters import DeadLetters
from servicekit.failures import describe
from servicekit.passes import repeat_passes
from services.notify.channels.chat import ChatSender
from services.notify.channels.email import EmailSender
from services.notify.channels.failures import DeliveryError
from services.notify.domain.rendering import Message, item, render
from services.notify.domain.routing import Routing, chat_destination_of, email_of
from services.notify.metrics import NotifyMetrics
from services.notify.repository import Claim, MessageRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff: timedelta
    max_backoff: timedelta

    def delay(self, attempts: int) -> timedelta:
        """The pause after the ``attempts``-th failure: backoff, 2x, 4x... at most ``max_backoff``."""
        delay: timedelta = self.backoff * (2 ** (attempts - 1))
        return min(delay, self.max_backoff)


class Dispatcher:
    def __init__(
        self,
        messages: MessageRepository,
        routing: Routing,
        *,
        email: EmailSender | None,
        chat: ChatSender,
        dead_letters: Mapping[str, DeadLetters],
        metrics: NotifyMetrics,
        link_base: str,
        lease: timedelta,
        retry: RetryPolicy,
        batch_size: int,
    ) -> None:
        self._messages = messages
        self._routing = routing
        self._email = email
        self._chat = chat
        self._dead_letters = dict(dead_letters)
        self._metrics = metrics
        self._link_base = link_base
        self._lease = lease
        self._retry = retry
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    async def dispatch_due(self, now: datetime) -> int:
        """Send (or retry later, or give up on) the messages due at ``now``; returns how many claims were handled."""
        handled = 0
        while handled < self._batch_size and not self._stopping.is_set():
            claim = await self._messages.claim_due(now, self._lease)
            if claim is None:
                break
            handled += 1
            try:
                await self._deliver(claim, now)
            except Exception:
                # MongoDB or Kafka away mid-claim: give the claim back so the next pass tries it at once.
                with contextlib.suppress(Exception):
                    await self._messages.release(claim)
                raise
        return handled

    async def _deliver(self, claim: Claim, now: datetime) -> None:
        first = claim.first
        digest = len(claim.messages) > 1
        event_type = "digest" if digest else first.notice.kind
        key = f"digest/{first.recipient}/{first.channel}/{first.digest_group}" if digest else first.key
        message = render([item(each.notice, each.reason, self._link_base) for each in claim.messages])
        try:
            await self._send(first.recipient, first.channel, message, key=key, now=now)
        except DeliveryError as failure:
            await self._failed(claim, failure, event_type, now)
            return
        sent = time.monotonic()
        marked = await self._messages.mark_sent(claim, now)
        self._metrics.unrecorded.labels(first.channel).observe(time.monotonic() - sent)
        if marked < len(claim.messages):
            log.warning("message %s was sent after its lease ran out; another replica may send it too", key)
        self._metrics.sent.labels(first.channel, event_type).inc()

    async def _send(self, recipient: str, channel: str, message: Message, *, key: str, now: datetime) -> None:
        if channel == "email":
            address = email_of(self._routing, recipient)
            if address is None:
                raise DeliveryError(f"{recipient} has no email address in the routing file", permanent=True)
            if self._email is None:
                raise DeliveryError("email is not configured (NOTIFY_SMTP_HOST)", permanent=True)
            await self._email.send(address, message, key=key, now=now)
            return
        destination = chat_destination_of(self._routing, recipient)
        if destination is None:
            raise DeliveryError(f"{recipient} has no chat destination in the routing file", permanent=True)
        await self._chat.send(destination[0], destination[1], message)

    async def _failed(self, claim: Claim, failure: DeliveryError, event_type: str, now: datetime) -> None:
        first = claim.first
        attempts = first.attempts + 1
        if not failure.permanent and attempts < self._retry.max_attempts:
            at = now + self._retry.delay(attempts)
            log.warning(
                "%s to %s failed (attempt %d): %s; next at %s",
                first.channel,
                first.recipient,
                attempts,
                failure.reason,
                at.isoformat(),
            )
            await self._messages.retry_later(claim, at, failure.reason)
            self._metrics.retries.labels(first.channel).inc()
            return
        why = "refused" if failure.permanent else f"failed after {attempts} attempts"
        reason = f"notify: {first.channel} to {first.recipient} {why}: {failure.reason}"
        seen: set[tuple[str, int, int]] = set()
        for queued in claim.messages:
            source = queued.source
            if (source.topic, source.partition, source.offset) in seen:
                continue
            seen.add((source.topic, source.partition, source.offset))
            dead_letters = self._dead_letters.get(source.topic)
            if dead_letters is None:
                log.error("no dead-letter topic for %s; %s", source.topic, reason)  # pragma: no cover
                continue
            await dead_letters.send(source.as_record(), reason, attempts)
        await self._messages.mark_failed(claim, now, failure.reason)
        self._metrics.failed.labels(first.channel, event_type).inc()

    async def run(self, clock: Clock, interval_seconds: float) -> None:
        """Dispatch every ``interval_seconds``, or at once when woken, until ``stop``."""

        async def one_pass() -> int:
            return await self.dispatch_due(clock.now())

        def failed(exc: Exception, wait: float) -> None:
            # One bounded line, as notify logged it before: a traceback would repeat what the reason already says.
            log.warning("dispatch failed (%s); trying again in %.1fs", describe(exc), wait)

        await repeat_passes(
            one_pass,
            batch_size=self._batch_size,
            interval_seconds=interval_seconds,
            stopping=self._stopping,
            on_failure=failed,
            wake=self._wake,
        )

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Finish the message in hand, then stop."""
        self._stopping.set()
        self._wake.set()
