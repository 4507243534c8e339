"""The review API under hostile input: bodies too large or unauthenticated, records growing past MongoDB's limit,
a forged Host header, and the headers every answer carries."""

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.review.documents import review_to_document
from services.review.domain.limits import MAX_RECORD_BYTES
from services.review.domain.record import LONG_TEXT, MAX_ENTRIES, Gaps, ReviewTimelineEntry
from tests.integration.review.conftest import EDITOR, VIEWER, ReviewApp, bearer, incident

pytestmark = pytest.mark.integration

MakeApp = Callable[..., Any]
MiB = 1024 * 1024


class CountedBody:
    """A chunked request body (no Content-Length) that counts how much of it the server pulled."""

    def __init__(self, total: int, chunk: int) -> None:
        self.chunks, self.chunk = total // chunk, b"[" + b"1," * (chunk // 2 - 1) + b"1"
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.sent += len(self.chunk)
            yield self.chunk


async def stored_version(app: ReviewApp, review_id: str) -> int:
    stored = await app.repository.get(review_id)
    assert stored is not None
    return stored.version


async def test_an_unauthenticated_write_is_refused_before_its_body_is_read(make_review_app: MakeApp) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("BIG-1"))
        url = f"/reviews/{review.id}"
        for headers, status in (({}, 401), (bearer("not-a-token-at-all"), 401), (bearer(VIEWER), 403)):
            body = CountedBody(64 * MiB, MiB)
            refused = await app.http.patch(url, content=body, headers={**headers, "Content-Type": "application/json"})
            assert refused.status_code == status
            assert refused.json()["code"] in ("unauthenticated", "forbidden")
            assert refused.headers["connection"] == "close"
            assert body.sent == 0  # not one chunk of the 64 MiB was pulled

        # The same with a declared length: a 16 MiB JSON array, refused on the headers alone.
        declared = await app.http.patch(url, content=b"[" + b"1," * (8 * MiB - 1) + b"1]")
        assert (declared.status_code, declared.json()["code"]) == (401, "unauthenticated")
        assert await stored_version(app, review.id) == 1


async def test_a_body_over_the_limit_gets_413_declared_or_streamed(make_review_app: MakeApp) -> None:
    limit = 64 * 1024
    async with make_review_app(max_body_bytes=limit) as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("BIG-2"))
        url = f"/reviews/{review.id}"
        editor = {**bearer(EDITOR), "If-Match": '"1"', "Content-Type": "application/json"}

        declared = await app.http.patch(url, content=b" " * (limit + 1), headers=editor)
        assert declared.status_code == 413
        assert declared.json() == {
            "detail": f"the request body is larger than {limit} bytes",
            "code": "body_too_large",
            "limit": "max_body_bytes",
            "maximum": limit,
        }
        assert declared.headers["connection"] == "close"

        streamed = CountedBody(16 * MiB, 16 * 1024)
        answer = await app.http.patch(url, content=streamed, headers=editor)
        assert (answer.status_code, answer.json()["code"]) == (413, "body_too_large")
        assert streamed.sent <= limit + 16 * 1024  # the limit and one chunk, never the rest

        within = await app.http.patch(url, json={"recommendations": ["x" * LONG_TEXT] * 5}, headers=editor)
        assert within.status_code == 200
        assert [type(event).__name__ for event in await app.events(review.id)] == ["ReviewOpened", "ReviewUpdated"]


async def test_an_edit_that_would_pass_mongodb_document_limit_is_refused_not_a_500(make_review_app: MakeApp) -> None:
    async with make_review_app(max_body_bytes=8 * MiB) as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("BIG-3"))
        # Stored as earlier versions could: 14 MB, every field within its own limit (1,000 entries of 10 KB...).
        entry = ReviewTimelineEntry(at=datetime(2026, 11, 27, 9, 0, tzinfo=UTC), kind="note", message="x" * LONG_TEXT)
        full = ["y" * LONG_TEXT] * MAX_ENTRIES
        big = review.model_copy(
            update={"timeline": [entry] * 1000, "recommendations": full, "gaps": Gaps(process=full)}
        )
        await app.db.reviews.replace_one({"_id": review.id}, review_to_document(big))

        grow = {"analysis": {"what_went_well": full, "what_went_wrong": full}}  # valid: 4 MB more, past 16 MiB
        refused = await app.http.patch(
            f"/reviews/{review.id}", json=grow, headers={**bearer(EDITOR), "If-Match": '"1"'}
        )
        assert refused.status_code == 413
        problem = refused.json()
        assert (problem["code"], problem["limit"], problem["maximum"]) == (
            "record_limit_exceeded",
            "record_bytes",
            MAX_RECORD_BYTES,
        )
        assert await stored_version(app, review.id) == 1
        assert [type(event).__name__ for event in await app.events(review.id)] == ["ReviewOpened"]


async def test_every_answer_says_nosniff_errors_and_metrics_included(make_review_app: MakeApp) -> None:
    async with make_review_app(anonymous_reads=False) as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("HDR-1"))
        answers = [
            await app.http.get("/healthz"),
            await app.http.get("/metrics"),
            await app.http.get("/openapi.json"),
            await app.http.get(f"/reviews/{review.id}", headers=bearer(VIEWER)),
            await app.http.get(f"/reviews/{review.id}/export.md", headers=bearer(VIEWER)),
            await app.http.get(f"/reviews/{review.id}"),  # 401
            await app.http.get("/reviews/nope", headers=bearer(VIEWER)),  # 404
            await app.http.get("/nowhere"),  # 404 of no route
            await app.http.get("/reviews", params={"limit": 0}, headers=bearer(VIEWER)),  # 422
            await app.http.patch(f"/reviews/{review.id}", json={"owner": "x"}, headers=bearer(EDITOR)),  # 428
            await app.http.options(f"/reviews/{review.id}"),
        ]
        assert [answer.status_code for answer in answers] == [200, 200, 200, 200, 200, 401, 404, 404, 422, 428, 204]
        assert all(answer.headers["x-content-type-options"] == "nosniff" for answer in answers)

        async def broken(_: str) -> None:
            raise RuntimeError("a bug")

        app.app.state.review_service.get = broken
        transport = httpx.ASGITransport(app=app.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://review") as http:
            failed = await http.get(f"/reviews/{review.id}", headers=bearer(VIEWER))
        assert failed.status_code == 500
        assert failed.json() == {"detail": "internal error", "code": "internal_error"}
        assert failed.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("public_base_url", "expected"),
    [
        ("http://review", "<http://review/reviews?offset=1&limit=1>"),
        ("https://lessons.example/api/", "<https://lessons.example/api/reviews?offset=1&limit=1>"),
        (None, "</reviews?offset=1&limit=1>"),
    ],
)
async def test_page_links_use_the_configured_address_not_the_host_header(
    make_review_app: MakeApp, public_base_url: str | None, expected: str
) -> None:
    async with make_review_app(public_base_url=public_base_url) as review_app:
        app: ReviewApp = review_app
        await app.open(incident("LINK-1"))
        await app.open(incident("LINK-2"))
        page = await app.http.get("/reviews", params={"limit": 1}, headers={"Host": "evil.example"})
        assert page.status_code == 200
        assert page.headers["link"] == f'{expected}; rel="next"'


async def test_options_answers_the_methods_of_the_path(make_review_app: MakeApp) -> None:
    async with make_review_app(anonymous_reads=False) as review_app:
        app: ReviewApp = review_app
        review = await app.open(incident("OPT-1"))
        url = f"/reviews/{review.id}"
        allowed = {
            "/reviews": "GET, OPTIONS",
            url: "GET, OPTIONS, PATCH",
            f"{url}/timeline": "OPTIONS, POST",
            f"{url}/action-items/AI-1": "OPTIONS, PATCH",
            "/metrics": "GET, OPTIONS",
            "/openapi.json": "GET, HEAD, OPTIONS",
        }
        for path, methods in allowed.items():
            answer = await app.http.options(path)
            assert (answer.status_code, answer.headers.get("allow")) == (204, methods), path
        assert (await app.http.options("/nowhere")).status_code == 404
        # A method the path does not have: 405 naming every method it has, not only one route's.
        wrong = await app.http.put(url, json={}, headers=bearer(EDITOR))
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, OPTIONS, PATCH")


async def test_the_openapi_document_states_the_version_every_write_needs(make_review_app: MakeApp) -> None:
    async with make_review_app() as review_app:
        app: ReviewApp = review_app
        spec = (await app.http.get("/openapi.json")).json()
        writes = [
            (path, method, operation)
            for path, operations in spec["paths"].items()
            for method, operation in operations.items()
            if method in ("post", "patch", "put", "delete")
        ]
        assert len(writes) == 8
        for path, method, operation in writes:
            where = f"{method} {path}"
            if_match = next(parameter for parameter in operation["parameters"] if parameter["name"] == "If-Match")
            assert if_match["in"] == "header", where
            assert "428" in if_match["description"], where
            assert '"3"' in if_match["description"], where
            schema = if_match["schema"]["anyOf"][0]
            assert schema["pattern"].startswith("^"), where
            assert {"409", "413", "428"} <= set(operation["responses"]), where
        versioned = spec["components"]["schemas"]["SectionEditRequest"]["properties"]["version"]
        assert "428" in versioned["description"]
