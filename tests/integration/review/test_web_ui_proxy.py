"""Trusted auth-proxy mode: who the proxy vouches for, believed only from the proxy's address; off by default."""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from pydantic import ValidationError

from services.review.settings import ReviewSettings
from tests.integration.review.conftest import ReviewApp, incident

pytestmark = pytest.mark.integration

MakeApp = Callable[..., AbstractAsyncContextManager[ReviewApp]]
PROXY = "10.0.0.7"
PROXY_SETTINGS = {
    "web_proxy_auth": True,
    "web_proxy_addresses": ["10.0.0.7/32"],
    "web_proxy_group_roles": {"sre-leads": "admin", "sre": "editor", "staff": "viewer"},
}


def client_from(app: ReviewApp, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app.app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://review")


def person(name: str, groups: str) -> dict[str, str]:
    return {"X-Forwarded-User": name, "X-Forwarded-Groups": groups}


async def test_the_proxy_vouches_with_the_highest_role_of_the_groups(make_review_app: MakeApp) -> None:
    async with make_review_app(**PROXY_SETTINGS) as app, client_from(app, PROXY) as http:
        review = await app.open(incident("PROXY-1"))
        page = await http.get(f"/review/{review.id}", headers=person("dana", "staff, sre"))
        assert page.status_code == 200
        assert "Signed in as <strong>dana</strong> (editor)" in page.text
        assert "Save the record" in page.text
        viewer = await http.get(f"/review/{review.id}", headers=person("sam", "staff"))
        assert "Save the record" not in viewer.text


async def test_the_same_headers_from_elsewhere_are_ignored(make_review_app: MakeApp) -> None:
    async with make_review_app(**PROXY_SETTINGS) as app, client_from(app, "10.0.0.8") as http:
        answer = await http.get("/", headers=person("mallory", "sre-leads"))
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/sign-in")


async def test_a_person_whose_groups_have_no_role_is_refused(make_review_app: MakeApp) -> None:
    async with make_review_app(**PROXY_SETTINGS) as app, client_from(app, PROXY) as http:
        answer = await http.get("/", headers=person("guest", "contractors"))
        assert answer.status_code == 403
        assert "none of their groups has a role here" in answer.text


async def test_proxy_mode_is_off_by_default(make_review_app: MakeApp) -> None:
    async with make_review_app() as app, client_from(app, PROXY) as http:
        answer = await http.get("/", headers=person("dana", "sre-leads"))
        assert answer.status_code == 303


def test_proxy_mode_without_proxy_addresses_does_not_start() -> None:
    with pytest.raises(ValidationError, match="REVIEW_WEB_PROXY_ADDRESSES"):
        ReviewSettings(web_proxy_auth=True)
