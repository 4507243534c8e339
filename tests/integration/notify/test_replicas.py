"""Two replicas dispatching the same queue at once send each message once: the lease decides who sends."""

import asyncio
from collections import Counter
from datetime import timedelta

import pytest

from services.notify.channels.chat import ChatSender
from services.notify.channels.email import EmailSender, SmtpConfig
from services.notify.dispatcher import Dispatcher, RetryPolicy
from services.notify.domain.planning import plan
from services.notify.metrics import NotifyMetrics
from services.notify.repository import MessageRepository, SourceRecord
from tests.conftest import Servers
from tests.integration.notify.receivers import smtp_server
from tests.support.mongo import scratch_database
from tests.unit.notify.builders import T0, notice_of, overdue, routing

pytestmark = pytest.mark.integration

PEOPLE = ("alice", "carol", "lead")
EVENTS = 4


def replica(messages: MessageRepository, port: int) -> Dispatcher:
    return Dispatcher(
        messages,
        routing(),
        email=EmailSender(SmtpConfig("127.0.0.1", port, "none", "lessons@example.org")),
        chat=ChatSender({}, {}, timeout_seconds=1),
        dead_letters={},
        metrics=NotifyMetrics.create(),
        link_base="https://lessons.example.org/review",
        lease=timedelta(minutes=2),
        retry=RetryPolicy(3, timedelta(seconds=1), timedelta(seconds=1)),
        batch_size=100,
    )


async def test_two_replicas_send_each_message_once(servers: Servers, unique: str) -> None:
    with smtp_server() as smtp:
        async with scratch_database(servers.mongodb_uri, f"notify_{unique}") as db:
            messages = MessageRepository(db)
            await messages.ensure_indexes()
            for n in range(EVENTS):
                for person in PEOPLE:
                    notice = notice_of(overdue(person, n=n * 10 + PEOPLE.index(person)))
                    decided = plan(
                        routing(), notice, now=T0, published_at=T0, max_age=timedelta(days=1),
                        channels=frozenset({"email"}),
                    )  # fmt: skip
                    source = SourceRecord("followups.events", 0, n, None, b"{}", (), 0)
                    assert await messages.enqueue(notice, decided.planned, source, T0) == [True]
            handled = await asyncio.gather(
                replica(messages, smtp.port).dispatch_due(T0), replica(messages, smtp.port).dispatch_due(T0)
            )
            assert sum(handled) == EVENTS * len(PEOPLE)
            assert await messages.count({"status": "sent"}) == EVENTS * len(PEOPLE)
        per_person = Counter(r for mail in smtp.sink.messages() for r in mail.recipients)
    assert per_person == {f"{person}@example.org": EVENTS for person in PEOPLE}
