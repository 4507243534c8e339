"""Notify end to end in one process: real Kafka, the real database server, a real SMTP server, a webhook receiver.

Exactly once in effect per (event, recipient, channel); channel failures retried with backoff then dead-lettered
without blocking anything else; quiet hours and digests held durably and sent when due (an injected clock).
"""

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.notify.domain.notices import ReviewFacts
from services.notify.repository import ReviewFactsRepository
from tests.conftest import Servers
from tests.integration.notify.receivers import smtp_server, webhook_receiver
from tests.integration.notify.support import (
    ManualClock,
    create_notify_topics,
    metric_reaches,
    parts,
    produce_events,
    queued,
    running_notify,
    sample,
    settings_for,
    write_routing,
)
from tests.support.kafka import produce, read_topic
from tests.support.mongo import scratch_database
from tests.support.ports import free_port
from tests.unit.notify.builders import T0, escalated, item_added, opened, overdue, published, reminder

pytestmark = pytest.mark.integration

SUPPRESSED = "lessons_notify_messages_suppressed_total"
SENT = "lessons_notify_messages_sent_total"
FAILED = "lessons_notify_messages_failed_total"


async def test_a_reminder_reaches_its_owner_once_by_email_and_chat_even_redelivered(
    servers: Servers, unique: str, tmp_path: Path
) -> None:
    clock = ManualClock(T0)  # 10:00 in Paris: not alice's quiet hours
    with smtp_server() as smtp, webhook_receiver() as hooks:
        settings = settings_for(unique, write_routing(tmp_path), smtp.port, hooks.url(""))
        await create_notify_topics(servers, settings)
        async with (
            scratch_database(servers.mongodb_uri, f"notify_{unique}") as db,
            running_notify(servers, db.name, settings, clock) as app,
        ):
            event = reminder("alice")
            await produce_events(servers, settings.followup_events_topic, [event])
            await queued(app, 2, event_id=str(event.event_id))
            assert await parts(app).dispatcher.dispatch_due(clock.now()) == 2

            # The same event again (a redelivery, or follow-up firing the timer twice): nothing new is queued.
            await produce_events(servers, settings.followup_events_topic, [event])
            await metric_reaches(
                app, SUPPRESSED, {"channel": "email", "event_type": "ReminderDue", "reason": "duplicate"}, 1
            )
            assert await parts(app).dispatcher.dispatch_due(clock.now()) == 0
            registry = parts(app).metrics.registry
            assert sample(registry, SENT, {"channel": "email", "event_type": "ReminderDue"}) == 1
            assert sample(registry, SENT, {"channel": "chat", "event_type": "ReminderDue"}) == 1

        (mail,) = smtp.sink.messages()
        (post,) = hooks.at("/payments")
    assert mail.recipients == ("alice@example.org",)
    plain = mail.message.get_body(("plain",))
    assert plain is not None
    assert "https://lessons.example.org/review/r-1" in plain.get_content()
    assert "You are this action item's owner." in plain.get_content()
    assert post.body["text"].startswith("<@U0ALICE> ")


async def test_a_published_postmortem_reaches_participants_and_subscribers(
    servers: Servers, unique: str, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    with smtp_server() as smtp, webhook_receiver() as hooks:
        settings = settings_for(unique, write_routing(tmp_path), smtp.port, hooks.url(""))
        await create_notify_topics(servers, settings)
        async with (
            scratch_database(servers.mongodb_uri, f"notify_{unique}") as db,
            running_notify(servers, db.name, settings, clock) as app,
        ):
            announced = published(changed_by="carol")
            events = [opened(), item_added(owner="bob", verifier=None), announced]
            await produce_events(servers, settings.review_events_topic, events)
            # alice (owner): email and chat; bob (item owner): email; carol (published it): email; leaders: chat.
            await queued(app, 5, event_id=str(announced.event_id))
            await parts(app).dispatcher.dispatch_due(clock.now())
        mails = smtp.sink.messages()
        (leaders,) = hooks.at("/leaders")
    assert sorted(r for mail in mails for r in mail.recipients) == [
        "alice@example.org",
        "bob@example.org",
        "carol@example.org",
    ]
    assert all(mail.message["Subject"] == "Postmortem published: “Checkout latency”" for mail in mails)
    card = leaders.body["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    assert "This channel subscribed to ReviewPublished (severity critical)." in str(card)


async def test_smtp_down_is_retried_with_backoff_then_dead_lettered_without_blocking_others(
    servers: Servers, unique: str, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    with webhook_receiver() as hooks:
        settings = settings_for(unique, write_routing(tmp_path), free_port(), hooks.url(""))  # nobody listens
        await create_notify_topics(servers, settings)
        async with (
            scratch_database(servers.mongodb_uri, f"notify_{unique}") as db,
            running_notify(servers, db.name, settings, clock) as app,
        ):
            dispatcher = parts(app).dispatcher
            event = overdue("carol")  # carol has email only
            await produce_events(servers, settings.followup_events_topic, [event])
            await queued(app, 1, event_id=str(event.event_id))
            assert await dispatcher.dispatch_due(clock.now()) == 1  # attempt 1 fails
            assert await dispatcher.dispatch_due(clock.now()) == 0  # backing off: not due yet
            clock.advance(timedelta(seconds=59))
            assert await dispatcher.dispatch_due(clock.now()) == 0
            clock.advance(timedelta(seconds=1))
            assert await dispatcher.dispatch_due(clock.now()) == 1  # attempt 2, after 60 s
            clock.advance(timedelta(seconds=119))
            assert await dispatcher.dispatch_due(clock.now()) == 0
            # Meanwhile another notice goes out by chat: a failing mail server holds nothing else up.
            other = reminder(None, n=2)
            await produce_events(servers, settings.followup_events_topic, [other])
            await queued(app, 1, event_id=str(other.event_id))
            assert await dispatcher.dispatch_due(clock.now()) == 1
            assert len(hooks.at("/payments")) == 1
            clock.advance(timedelta(seconds=1))
            assert await dispatcher.dispatch_due(clock.now()) == 1  # attempt 3, after 120 s more: the last
            registry = parts(app).metrics.registry
            assert sample(registry, FAILED, {"channel": "email", "event_type": "ActionItemOverdue"}) == 1
            assert sample(registry, "lessons_notify_delivery_retries_total", {"channel": "email"}) == 2
            (failed,) = await parts(app).messages.find({"event_id": str(event.event_id)})
            assert (failed["status"], failed["attempts"]) == ("failed", 3)
            clock.advance(timedelta(days=1))
            assert await dispatcher.dispatch_due(clock.now()) == 0

        dlq = settings.dlq_topic(settings.followup_events_topic)
        (dead,) = await read_topic(servers.kafka_bootstrap, dlq, expect=1, timeout=20)
    assert dead.value == event.model_dump_json().encode()
    assert dead.headers["dlq-attempts"] == "3"
    assert dead.headers["dlq-failed-by"] == "notify"
    assert dead.headers["dlq-reason"].startswith("notify: email to person:carol failed after 3 attempts: SMTP server")


async def test_a_refused_address_is_dead_lettered_at_once(servers: Servers, unique: str, tmp_path: Path) -> None:
    clock = ManualClock(T0)
    with smtp_server() as smtp, webhook_receiver() as hooks:
        smtp.sink.refuse.add("carol@example.org")
        settings = settings_for(unique, write_routing(tmp_path), smtp.port, hooks.url(""))
        await create_notify_topics(servers, settings)
        async with (
            scratch_database(servers.mongodb_uri, f"notify_{unique}") as db,
            running_notify(servers, db.name, settings, clock) as app,
        ):
            await produce_events(servers, settings.followup_events_topic, [overdue("carol"), overdue("lead", n=2)])
            await queued(app, 2)
            assert await parts(app).dispatcher.dispatch_due(clock.now()) == 2
            assert (
                sample(parts(app).metrics.registry, FAILED, {"channel": "email", "event_type": "ActionItemOverdue"})
                == 1
            )
        dead = await read_topic(servers.kafka_bootstrap, settings.dlq_topic(settings.followup_events_topic), expect=1)
        assert [r.recipients for r in smtp.sink.messages()] == [("lead@example.org",)]
    assert len(dead) == 1
    assert "refused: SMTP recipient refused: 550" in dead[0].headers["dlq-reason"]


async def test_quiet_hours_hold_a_message_until_they_end(servers: Servers, unique: str, tmp_path: Path) -> None:
    paris = ZoneInfo("Europe/Paris")
    clock = ManualClock(T0.replace(hour=22, minute=30))  # 23:30 in Paris: alice is in quiet hours
    with smtp_server() as smtp, webhook_receiver() as hooks:
        settings = settings_for(unique, write_routing(tmp_path), smtp.port, hooks.url(""))
        await create_notify_topics(servers, settings)
        async with (
            scratch_database(servers.mongodb_uri, f"notify_{unique}") as db,
            running_notify(servers, db.name, settings, clock) as app,
        ):
            escalation = escalated("alice")
            await produce_events(servers, settings.followup_events_topic, [escalation])
            await queued(app, 2, event_id=str(escalation.event_id))
            assert await parts(app).dispatcher.dispatch_due(clock.now()) == 0
            assert (
                sample(
                    parts(app).metrics.registry,
                    SUPPRESSED,
                    {"channel": "email", "event_type": "Escalated", "reason": "quiet_hours"},
                )
                == 1
            )
            clock.set(clock.now().astimezone(paris).replace(hour=7, minute=29) + timedelta(days=1))
            assert await parts(app).dispatcher.dispatch_due(clock.now()) == 0
            clock.advance(timedelta(minutes=1))  # 07:30 in Paris
            assert await parts(app).dispatcher.dispatch_due(clock.now()) == 2
        assert [m.recipients for m in smtp.sink.messages()] == [("alice@example.org",)]
        assert len(hooks.at("/payments")) == 1


async def test_a_digest_groups_one_persons_reminders_of_a_period(servers: Servers, unique: str, tmp_path: Path) -> None:
    new_york = ZoneInfo("America/New_York")
    clock = ManualClock(T0.astimezone(new_york).replace(hour=9, minute=0))  # bob's period is 08:00 to 12:00
    with smtp_server() as smtp, webhook_receiver() as hooks:
        settings = settings_for(unique, write_routing(tmp_path), smtp.port, hooks.url(""))
        await create_notify_topics(servers, settings)
        async with (
            scratch_database(servers.mongodb_uri, f"notify_{unique}") as db,
            running_notify(servers, db.name, settings, clock) as app,
        ):
            await produce_events(servers, settings.followup_events_topic, [overdue("bob", n) for n in (1, 2, 3)])
            await queued(app, 3, recipient="person:bob")
            clock.set(clock.now().replace(hour=11, minute=59))
            assert await parts(app).dispatcher.dispatch_due(clock.now()) == 0
            clock.set(clock.now().replace(hour=12, minute=0))
            assert await parts(app).dispatcher.dispatch_due(clock.now()) == 1
            registry = parts(app).metrics.registry
            assert sample(registry, SENT, {"channel": "email", "event_type": "digest"}) == 1
            assert (
                sample(
                    registry, SUPPRESSED, {"channel": "email", "event_type": "ActionItemOverdue", "reason": "digest"}
                )
                == 3
            )
        (mail,) = smtp.sink.messages()
    assert mail.message["Subject"].startswith("3 reminders: ")
    text = mail.message.get_body(("plain",))
    assert text is not None
    for n in (1, 2, 3):
        assert f"https://lessons.example.org/review/r-{n}" in text.get_content()


async def test_a_record_that_is_no_event_is_dead_lettered(servers: Servers, unique: str, tmp_path: Path) -> None:
    clock = ManualClock(T0)
    with smtp_server() as smtp, webhook_receiver() as hooks:
        settings = settings_for(unique, write_routing(tmp_path), smtp.port, hooks.url(""))
        await create_notify_topics(servers, settings)
        async with (
            scratch_database(servers.mongodb_uri, f"notify_{unique}") as db,
            running_notify(servers, db.name, settings, clock),
        ):
            await produce(servers.kafka_bootstrap, settings.review_events_topic, b'{"type": "ReviewOpened"}')
            dead = await read_topic(servers.kafka_bootstrap, settings.dlq_topic(settings.review_events_topic), expect=1)
    assert len(dead) == 1
    assert dead[0].headers["dlq-reason"].startswith("not a valid reviews event")


async def test_review_facts_keep_their_newest_version(servers: Servers, unique: str) -> None:
    async with scratch_database(servers.mongodb_uri, f"notify_{unique}") as db:
        facts = ReviewFactsRepository(db)
        await facts.save(ReviewFacts(review_id="r-1", title="second", version=2))
        await facts.save(ReviewFacts(review_id="r-1", title="first", version=1))  # late: ignored
        await facts.save(ReviewFacts(review_id="r-1", title="second again", version=2))  # repeated: ignored
        assert await facts.get("r-1") == ReviewFacts(review_id="r-1", title="second", version=2)
        await facts.save(ReviewFacts(review_id="r-1", title="third", version=3))
        stored = await facts.get("r-1")
        assert stored is not None
        assert stored.title == "third"
