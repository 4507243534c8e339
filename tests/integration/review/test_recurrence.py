"""Recurrence against the real MongoDB-compatible server: what matches, within which window, and what is written."""

from datetime import timedelta
from typing import Any

import pytest

from schemas import ReviewRecurred, ReviewUpdated
from services.review.domain.editing import SectionEdit
from tests.integration.review.conftest import RESOLVED, ReviewApp, incident

pytestmark = pytest.mark.integration

LATER = RESOLVED + timedelta(days=30)


async def test_matches_by_fingerprint_first_then_by_service_and_normalised_title(make_review_app: Any) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        by_fingerprint = await app.open(
            incident("R-1", fingerprint="disk-full", service="db", title="Disk full on db-7")
        )
        by_title = await app.open(
            incident("R-2", service="db", title="Disk 90% full on DB-3", resolved_at=RESOLVED + timedelta(days=1))
        )
        # Both match; the fingerprint wins although the title match is more recent.
        new = await app.open(
            incident("R-3", fingerprint="disk-full", service="db", title="Disk 95% full on db-9", resolved_at=LATER)
        )
        assert new.recurrence is not None
        assert (new.recurrence.earlier_review_id, new.recurrence.matched_on) == (by_fingerprint.id, "fingerprint")
        assert new.recurred_after_remediation is False  # the earlier review had no action items

        next_day = LATER + timedelta(days=1)
        titled = await app.open(incident("R-4", service="db", title="Disk 99% full on db-1", resolved_at=next_day))
        assert titled.recurrence is not None
        # No fingerprint: by title, and the latest earlier occurrence is R-3 now, not R-2.
        assert (titled.recurrence.earlier_review_id, titled.recurrence.matched_on) == (new.id, "service_and_title")
        assert by_title.id not in titled.related_reviews

        elsewhere = await app.open(incident("R-5", service="cache", title="Disk 99% full on db-1", resolved_at=LATER))
        assert elsewhere.recurrence is None
        assert elsewhere.related_reviews == []

        stored = await app.repository.get(by_fingerprint.id)
        assert stored is not None
        assert stored.related_reviews == [new.id]
        assert stored.version == 2
        events = await app.events(new.id)
        assert [type(event).__name__ for event in events] == ["ReviewOpened", "ReviewRecurred", "ReviewUpdated"]
        assert isinstance(events[1], ReviewRecurred)
        assert events[1].earlier_incident_key == "generic:R-1"


async def test_only_within_the_configured_window(make_review_app: Any) -> None:
    async with make_review_app(recurrence_window_days=10) as review_app:
        app: ReviewApp = review_app
        await app.open(incident("W-1", fingerprint="tls-expired"))
        outside = await app.open(incident("W-2", fingerprint="tls-expired", resolved_at=RESOLVED + timedelta(days=11)))
        assert outside.recurrence is None
        inside = await app.open(incident("W-3", fingerprint="tls-expired", resolved_at=RESOLVED + timedelta(days=20)))
        assert inside.recurrence is not None
        assert inside.recurrence.earlier_review_id == outside.id
        # Only earlier incidents count: one resolved before W-1 but processed now is not W-1's recurrence.
        before = await app.open(
            incident("W-0", fingerprint="tls-expired", started_at=None, resolved_at=RESOLVED - timedelta(days=1))
        )
        assert before.recurrence is None


async def test_a_redelivered_incident_links_nothing_twice(make_review_app: Any) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        earlier = await app.open(incident("D-1", fingerprint="queue-stuck"))
        again = incident("D-2", fingerprint="queue-stuck", resolved_at=LATER)
        await app.open(again)
        assert (await app.service.open_for_incident(again)).review is None
        stored = await app.repository.get(earlier.id)
        assert stored is not None
        assert (stored.version, len(stored.related_reviews)) == (2, 1)
        # One entry per review and transaction: D-1 opened; D-2 opened and recurred; D-1 updated.
        assert sorted(len(entry["events"]) for entry in await app.outbox()) == [1, 1, 2]


async def test_an_edit_to_the_earlier_review_while_linking_makes_opening_start_over(make_review_app: Any) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        earlier = await app.open(incident("C-1", fingerprint="dns-timeout"))
        repository = app.repository
        find = repository.earlier_occurrence
        edits = 0

        async def find_then_someone_edits(query: Any) -> Any:
            nonlocal edits
            found = await find(query)
            if edits == 0:  # a person saves the earlier review right after the service read it
                assert found is not None  # the test opened it
                edits += 1
                await app.service.edit_sections(earlier.id, found.version, SectionEdit(owner="erin"), "erin")
            return found

        repository.earlier_occurrence = find_then_someone_edits  # type: ignore[method-assign]
        new = await app.open(incident("C-2", fingerprint="dns-timeout", resolved_at=LATER))
        assert new.related_reviews == [earlier.id]
        stored = await app.repository.get(earlier.id)
        assert stored is not None
        assert (stored.owner, stored.related_reviews, stored.version) == ("erin", [new.id], 3)  # neither change lost
        updates = [event for event in await app.events(earlier.id) if isinstance(event, ReviewUpdated)]
        assert [(event.changed, event.version) for event in updates] == [(("owner",), 2), (("related_reviews",), 3)]
