"""Schemathesis against the review app's OpenAPI spec, with a real MongoDB behind it: no input makes it fail.

Every operation gets generated requests (valid and invalid ones); most of them are pointed at a real review, carry a
token and state the review's current version, so that they get past 404/401/409 into the code that does the work.
Responses must not be server errors and must match the spec (status code, content type, body schema).
Bounded: a few dozen examples per operation, well under a minute in all (``REVIEW_FUZZ_SCALE`` multiplies them).
"""

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient
from pymongo.collection import Collection
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from schemathesis.python import asgi

from services.review.app import create_app
from services.review.documents import review_to_document
from services.review.domain.policy import ReviewPolicy
from services.review.domain.record import open_review
from services.review.settings import KafkaSettings, MongoSettings
from tests.conftest import Servers
from tests.integration.review.conftest import ADMIN, EDITOR, VIEWER, incident, review_settings

pytestmark = pytest.mark.integration

# REVIEW_FUZZ_SCALE=10 for a deeper run by hand; the default keeps the suite fast.
SCALE = int(os.environ.get("REVIEW_FUZZ_SCALE", "1"))
EXAMPLES = {GenerationMode.POSITIVE: 30 * SCALE, GenerationMode.NEGATIVE: 15 * SCALE}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def seeded(servers: Servers, unique: str) -> Iterator[tuple[Any, MongoClient[dict[str, Any]], list[str]]]:
    database = f"fuzz_{unique}"
    client: MongoClient[dict[str, Any]] = MongoClient(servers.mongodb_uri, tz_aware=True)
    ids = []
    for number in range(2):
        closed = incident(f"FUZZ-{number}")
        review, _ = open_review(closed, ReviewPolicy().decide(closed), closed.resolved_at)
        client[database].reviews.insert_one(review_to_document(review))
        ids.append(review.id)
    settings = review_settings(unique, outbox_poll_seconds=30.0, outbox_wake_on_write=False)
    app = create_app(
        KafkaSettings(bootstrap_servers=servers.kafka_bootstrap),
        MongoSettings(uri=servers.mongodb_uri, database=database),
        settings,
    )
    try:
        yield app, client, ids
    finally:
        asgi.shutdown_lifespans()  # the app's lifespan ran in schemathesis's event loop thread: stop it there
        client.drop_database(database)
        client.close()


def fuzz(operation: Any, mode: GenerationMode, reviews: Collection[dict[str, Any]], review_ids: list[str]) -> None:
    """Run one operation's generated requests in one generation mode."""

    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(generation_mode=mode),
        target=st.sampled_from([*review_ids, None]),
        token=st.sampled_from([ADMIN, ADMIN, EDITOR, VIEWER, None]),
        state_version=st.booleans(),
    )
    def exchange(case: Any, target: str | None, token: str | None, state_version: bool) -> None:
        if target is not None and case.path_parameters and "review_id" in case.path_parameters:
            case.path_parameters["review_id"] = target
            if "item_id" in case.path_parameters:
                case.path_parameters["item_id"] = "AI-1"
        headers: dict[str, str] = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if state_version and target is not None and mode is GenerationMode.POSITIVE:
            # The current version, so valid writes get through to the domain instead of stopping at 409.
            stored = reviews.find_one({"_id": target}, {"version": 1})
            headers["If-Match"] = json.dumps(str(stored["version"])) if stored else '"1"'
            if isinstance(case.body, dict):
                case.body.pop("version", None)
        case.call_and_validate(headers=headers, checks=CHECKS)

    exchange()


def test_no_generated_request_makes_the_review_api_fail(
    seeded: tuple[Any, MongoClient[dict[str, Any]], list[str]],
) -> None:
    app, client, review_ids = seeded
    reviews = client[app.state.review_repository.reviews.database.name].reviews
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(results) == len(operations) == 15  # every operation loaded

    for operation in operations:
        fuzz(operation, GenerationMode.POSITIVE, reviews, review_ids)
        spec = operation.definition.raw
        if spec.get("parameters") or spec.get("requestBody"):  # else nothing to make invalid (e.g. /healthz)
            fuzz(operation, GenerationMode.NEGATIVE, reviews, review_ids)

    # The fuzzing got somewhere: writes went through on the seeded reviews.
    assert max(doc["version"] for doc in reviews.find({"_id": {"$in": review_ids}})) > 1
