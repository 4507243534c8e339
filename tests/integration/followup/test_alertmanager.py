"""Alert verifications that also ask a real Alertmanager, beside the real Prometheus with known history.

Alertmanager only knows which alerts are unresolved now: one it reports firing since before the window's end proves
the alert fired during the window, even when Prometheus' ``ALERTS`` does not hold it (another Prometheus, another
ruler sent it); one that started after the window does not count; and when Alertmanager does not answer, Prometheus'
"no alert" is not enough for ``effective``.
"""

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from schemas import RemediationVerified
from schemas.verification import Verdict, VerificationMethod, VerificationPlan
from services.followup.alertmanager import AlertmanagerClient
from services.followup.domain.answers import Firing, NoAnswer, Problem
from services.followup.settings import AlertmanagerSettings, PrometheusSettings
from services.followup.verification_timers import VERIFICATION_TIMERS
from tests.conftest import Servers
from tests.integration.followup.prometheus_history import History
from tests.integration.followup.support import (
    ManualClock,
    create_followup_topics,
    parts,
    produce_events,
    running_followup,
    settings_for,
    tracked_at_version,
)
from tests.integration.followup.verification_story import ALERT_FIRED, HOUR, done_with_plans
from tests.support.alertmanager import AlertmanagerServer
from tests.support.mongo import scratch_database
from tests.support.ports import free_port
from tests.support.prometheus import PrometheusServer
from tests.support.waiting import eventually
from tests.unit.followup.builders import ReviewStory

pytestmark = pytest.mark.integration

ODD_SERVICE = 'pay"ments\\eu'  # a quote and a backslash: the filter must escape both


def checkout_slow(service: str) -> VerificationPlan:
    return VerificationPlan(
        method=VerificationMethod.ALERT,
        alert_name="CheckoutSlow",
        alert_matchers={"service": service},
        window_seconds=HOUR,
        stabilisation_seconds=0,
    )


PLANS = {
    "prometheus-saw-it": ALERT_FIRED,  # in the history's ALERTS, not in Alertmanager
    "alertmanager-saw-it": checkout_slow(ODD_SERVICE),  # in Alertmanager only, firing since inside the window
    "fired-after-the-window": checkout_slow("billing"),  # in Alertmanager only, firing since after the window
    "quiet": checkout_slow("search"),  # nowhere
}


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[AlertmanagerServer]:
    server = AlertmanagerServer(tmp_path / "alertmanager")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(alertmanager: AlertmanagerServer) -> AsyncIterator[AlertmanagerClient]:
    client = AlertmanagerClient(AlertmanagerSettings(url=alertmanager.url, timeout_seconds=5))
    try:
        yield client
    finally:
        await client.close()


async def test_alertmanager_answers_the_unresolved_alerts_whose_labels_match(
    client: AlertmanagerClient, alertmanager: AlertmanagerServer, history: History
) -> None:
    alertmanager.fire({"alertname": "CheckoutSlow", "service": ODD_SERVICE, "zone": "a"}, history.at(70))
    alertmanager.fire({"alertname": "CheckoutSlow", "service": "billing"}, history.at(130))

    found = await client.firing([("alertname", "CheckoutSlow"), ("service", ODD_SERVICE)])

    assert isinstance(found, Firing)
    ((alert),) = found.alerts
    assert alert.starts_at == history.at(70)
    assert alert.fingerprint
    assert await client.firing([("alertname", "CheckoutSlow"), ("service", "search")]) == Firing(())
    both = await client.firing([("alertname", "CheckoutSlow")])
    assert isinstance(both, Firing)
    assert sorted(alert.starts_at for alert in both.alerts) == [history.at(70), history.at(130)]


async def test_a_refused_filter_and_an_alertmanager_that_is_down_are_told_apart(client: AlertmanagerClient) -> None:
    refused = await client.firing([("not a label", "x")])
    assert isinstance(refused, NoAnswer)
    assert refused.problem is Problem.QUERY_ERROR
    assert refused.detail.startswith("HTTP 400: ")

    down = AlertmanagerClient(AlertmanagerSettings(url=f"http://127.0.0.1:{free_port()}", timeout_seconds=5))
    try:
        answer = await down.firing([("alertname", "CheckoutSlow")])
    finally:
        await down.close()
    assert isinstance(answer, NoAnswer)
    assert answer.problem is Problem.UNREACHABLE


async def test_an_alert_alertmanager_reports_firing_since_inside_the_window_makes_the_item_not_effective(
    servers: Servers,
    unique: str,
    prometheus: PrometheusServer,
    alertmanager: AlertmanagerServer,
    history: History,
) -> None:
    alertmanager.fire({"alertname": "CheckoutSlow", "service": ODD_SERVICE}, history.at(70))
    alertmanager.fire({"alertname": "CheckoutSlow", "service": "billing"}, history.at(130))
    verdicts = await verify_alerts(servers, unique, prometheus, AlertmanagerSettings(url=alertmanager.url), history)

    assert {item: event.verdict for item, event in verdicts.items()} == {
        "prometheus-saw-it": Verdict.NOT_EFFECTIVE,
        "alertmanager-saw-it": Verdict.NOT_EFFECTIVE,
        "fired-after-the-window": Verdict.EFFECTIVE,
        "quiet": Verdict.EFFECTIVE,
    }
    seen = verdicts["alertmanager-saw-it"]
    assert seen.evidence.observed == 1.0
    assert seen.evidence.detail == (
        "the alert fired during the window: Alertmanager reports 1 firing since "
        f"{history.at(70).isoformat()}, before the window's end"
    )
    assert verdicts["quiet"].evidence.detail == (
        "the alert did not fire during the window "
        "(nor does Alertmanager report it firing since before the window's end)"
    )


async def test_without_an_answer_from_alertmanager_no_alert_in_prometheus_is_not_enough(
    servers: Servers, unique: str, prometheus: PrometheusServer, history: History
) -> None:
    down = AlertmanagerSettings(url=f"http://127.0.0.1:{free_port()}", timeout_seconds=5)
    verdicts = await verify_alerts(servers, unique, prometheus, down, history)

    assert {item: event.verdict for item, event in verdicts.items()} == {
        "prometheus-saw-it": Verdict.NOT_EFFECTIVE,
        "alertmanager-saw-it": Verdict.INCONCLUSIVE,
        "fired-after-the-window": Verdict.INCONCLUSIVE,
        "quiet": Verdict.INCONCLUSIVE,
    }
    detail = verdicts["quiet"].evidence.detail
    assert detail.startswith("unreachable: Alertmanager: ConnectError")
    assert detail.endswith("(Prometheus saw no alert during the window)")


async def verify_alerts(
    servers: Servers,
    unique: str,
    prometheus: PrometheusServer,
    alertmanager: AlertmanagerSettings,
    history: History,
) -> dict[str, RemediationVerified]:
    """Each plan's first verdict, as the verification sweep published it after the window."""
    settings = settings_for(unique)
    await create_followup_topics(servers, settings)
    clock = ManualClock(history.at(0))
    story = ReviewStory(f"r-{unique}")
    async with (
        scratch_database(servers.mongodb_uri, f"followup_{unique}") as db,
        running_followup(
            servers, db.name, settings, clock, PrometheusSettings(url=prometheus.url), alertmanager=alertmanager
        ) as app,
    ):
        await produce_events(servers, settings.review_events_topic, done_with_plans(story, history, PLANS))
        await tracked_at_version(app, story.review_id, story.version)
        # The verification timers are written after the view: sweeping before they are would find nothing due.
        timers = db[VERIFICATION_TIMERS]
        await eventually(lambda: timers.count_documents({"review_id": story.review_id}), lambda n: n == len(PLANS))
        clock.set(history.at(120) + timedelta(minutes=3))
        fired = await parts(app).verifier.sweep_once(clock.now())
    return {one.event.action_item_id: one.event for one in fired}
