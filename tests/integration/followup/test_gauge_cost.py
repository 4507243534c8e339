"""The unverified-remediations gauge reads the views awaiting a verdict, not every review follow-up ever tracked.

Follow-up counts it right after start-up and then every minute; a count that read every stored view made its cost,
and the database server's load, grow with the history (100k views: seconds of server CPU per count).
"""

from dataclasses import replace
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from schemas import ActionItemPriority, ActionItemStatus, ReviewStatus
from schemas.verification import Verdict, VerificationMethod, VerificationPlan
from services.followup.domain.projection import ActionItemView, ReviewView, apply_event
from services.followup.review_views import AWAITING_VERDICT, ReviewViewRepository, view_to_document
from services.followup.verification_metrics import _count_unverified, unverified_pipeline
from tests.conftest import Servers
from tests.support.mongo import scratch_database
from tests.unit.followup.builders import DAY, T0, ReviewStory

pytestmark = pytest.mark.integration

SETTLED = 200  # views with nothing awaiting a verdict: the history the count must not read


def view(review_id: str, *items: ActionItemView, status: ReviewStatus = ReviewStatus.OPEN) -> ReviewView:
    opened = apply_event(None, ReviewStory(review_id).opened(status=status)).view
    assert opened is not None
    return replace(opened, action_items=items)


def item(status: ActionItemStatus, plan: VerificationPlan | None, verdict: Verdict | None = None) -> ActionItemView:
    return ActionItemView(
        action_item_id="a-1",
        title="Alert on queue depth",
        priority=ActionItemPriority.HIGH,
        status=status,
        owner="bob",
        due_at=None,
        due_set_at=T0,
        added_at=T0,
        closed_at=T0 + DAY if status is ActionItemStatus.DONE else None,
        verification=plan,
        verdict=verdict,
    )


async def docs_examined(db: AsyncDatabase[dict[str, Any]], collection: str) -> int:
    command = {"aggregate": collection, "pipeline": unverified_pipeline(), "cursor": {}}
    explanation = await db.command("explain", command, verbosity="executionStats")
    # MongoDB answers for the whole pipeline at the top, or for the query under the first stage's $cursor.
    cursor = explanation["stages"][0]["$cursor"] if "stages" in explanation else explanation
    return int(cursor["executionStats"]["totalDocsExamined"])


async def test_the_unverified_count_reads_only_views_awaiting_a_verdict_and_views_stored_before_the_flag(
    servers: Servers, unique: str
) -> None:
    recurrence = VerificationPlan(method=VerificationMethod.RECURRENCE, window_seconds=10 * 86_400)
    manual = VerificationPlan(method=VerificationMethod.MANUAL)
    async with scratch_database(servers.mongodb_uri, f"followup_{unique}") as db:
        views = ReviewViewRepository(db)
        await views.ensure_indexes()
        settled = [view(f"settled-{number}") for number in range(SETTLED - 3)] + [
            view("judged", item(ActionItemStatus.DONE, recurrence, Verdict.EFFECTIVE)),
            view("not-done", item(ActionItemStatus.OPEN, recurrence)),
            view("no-plan", item(ActionItemStatus.DONE, None)),
        ]
        awaiting = [
            view("awaiting-recurrence", item(ActionItemStatus.DONE, recurrence)),
            view("awaiting-manual", item(ActionItemStatus.DONE, manual)),
            view("cancelled", item(ActionItemStatus.DONE, manual), status=ReviewStatus.CANCELLED),
        ]
        await views.reviews.insert_many([view_to_document(each) for each in settled + awaiting])
        # A view stored before the flag existed, awaiting a verdict: still counted.
        before_flag = view_to_document(view("before-flag", item(ActionItemStatus.DONE, recurrence)))
        del before_flag[AWAITING_VERDICT]
        await views.reviews.insert_one(before_flag)

        counted = await _count_unverified(views.reviews)
        examined = await docs_examined(db, views.reviews.name)

    assert counted == {"recurrence": 2, "manual": 1}
    assert examined <= len(awaiting) + 1, f"{examined} views read to count {sum(counted.values())}"
