"""Remediations verified end to end: review events on real Kafka, follow-up on the real database, a real Prometheus.

Items are done with verification plans at the moment the test Prometheus' history says the change was made; after
their window (an hour of that history) the verification sweep, at a time the test chooses, publishes one
``RemediationVerified`` per item to ``followups.events``, with its verdict and evidence, and nothing twice.
"""

from datetime import timedelta

import pytest

from schemas import RemediationVerified, followup_event_adapter, followup_event_id
from schemas.verification import Verdict
from services.followup.recurrences import RecurrenceRepository
from services.followup.settings import PrometheusSettings
from tests.conftest import Servers
from tests.integration.followup.prometheus_history import History
from tests.integration.followup.support import (
    ManualClock,
    create_followup_topics,
    parts,
    produce_events,
    running_followup,
    scrape,
    settings_for,
    tracked_at_version,
)
from tests.integration.followup.verification_story import (
    ALERT_FIRED,
    ALERT_QUIET,
    LATENCY_FIXED,
    NO_RECURRENCE,
    QUEUE_NOT_FIXED,
    done_with_plans,
    recurrence_of,
)
from tests.support.kafka import read_to_end, read_topic
from tests.support.mongo import scratch_database
from tests.support.prometheus import PrometheusServer
from tests.support.waiting import eventually
from tests.unit.followup.builders import ReviewStory

pytestmark = pytest.mark.integration


async def test_done_items_are_verified_once_after_their_window(
    servers: Servers, unique: str, prometheus: PrometheusServer, history: History
) -> None:
    settings = settings_for(unique)
    await create_followup_topics(servers, settings)
    clock = ManualClock(history.at(0))
    story = ReviewStory(f"r-{unique}")
    plans = {
        "latency": LATENCY_FIXED,
        "queue": QUEUE_NOT_FIXED,
        "alert-fired": ALERT_FIRED,
        "alert-quiet": ALERT_QUIET,
        "recurrence": NO_RECURRENCE,
    }

    async with (
        scratch_database(servers.mongodb_uri, f"followup_{unique}") as db,
        running_followup(servers, db.name, settings, clock, PrometheusSettings(url=prometheus.url)) as app,
    ):
        verifier = parts(app).verifier
        await produce_events(servers, settings.review_events_topic, done_with_plans(story, history, plans))
        await produce_events(servers, settings.review_events_topic, [recurrence_of(story, history, 90)])
        await tracked_at_version(app, story.review_id, story.version)
        await eventually(lambda: RecurrenceRepository(db).linked_to(story.review_id), lambda linked: len(linked) == 1)

        window_end = history.at(120)
        early = await verifier.sweep_once(window_end)  # the window is over, but its last samples may be missing
        clock.set(window_end + timedelta(minutes=3))
        fired = await verifier.sweep_once(clock.now())
        again = await verifier.sweep_once(clock.now() + timedelta(days=1))
        samples = await scrape(app)

    await read_topic(servers.kafka_bootstrap, settings.events_topic, expect=5)  # the sweeps above have returned
    records = await read_to_end(servers.kafka_bootstrap, settings.events_topic)
    events = [followup_event_adapter.validate_json(record.value) for record in records]
    verdicts = {}
    for event in events:
        assert isinstance(event, RemediationVerified)
        verdicts[event.action_item_id] = event
    assert (early, again) == ([], [])
    assert len(fired) == 5
    assert len(events) == 5
    assert {item: event.verdict for item, event in verdicts.items()} == {
        "latency": Verdict.EFFECTIVE,
        "queue": Verdict.NOT_EFFECTIVE,
        "alert-fired": Verdict.NOT_EFFECTIVE,
        "alert-quiet": Verdict.EFFECTIVE,
        "recurrence": Verdict.NOT_EFFECTIVE,
    }
    latency = verdicts["latency"]
    assert latency.event_id == followup_event_id(latency.timer_id)
    assert latency.timer_id.endswith("#1")
    assert (latency.attempt, latency.owner, latency.review_id) == (1, "carol", story.review_id)
    assert latency.occurred_at == window_end + timedelta(minutes=2)
    evidence = latency.evidence
    assert evidence.expression == 'max_over_time(checkout_latency_seconds{job="checkout"}[3600s])'
    assert (evidence.baseline, evidence.observed, evidence.threshold) == (0.9, 0.3, 0.5)
    assert (evidence.window_start, evidence.window_end) == (history.changed_at, window_end)
    assert (evidence.judged_by, evidence.judged_at) == ("followup/prometheus", clock.now())
    assert verdicts["alert-fired"].evidence.detail == "the alert fired during the window (1 series)"
    assert verdicts["recurrence"].evidence.judged_by == "followup/recurrence"
    assert f"review {story.review_id}-again (incident " in verdicts["recurrence"].evidence.detail
    headers = {record.headers["event-id"] for record in records}
    assert headers == {str(event.event_id) for event in events}

    def sample(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert sample("lessons_remediation_evaluations_total", method="metric", verdict="effective") == 1
    assert sample("lessons_remediation_evaluations_total", method="alert", verdict="not_effective") == 1
    assert sample("lessons_remediation_evaluations_total", method="recurrence", verdict="not_effective") == 1
    # Review has not recorded any of these verdicts yet: all five are done and unverified.
    assert sample("lessons_remediations_unverified", method="metric") == 2
    assert sample("lessons_remediations_unverified", method="alert") == 2
    assert sample("lessons_remediation_verifications_retrying") == 0
