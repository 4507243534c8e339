"""The web UI's pure parts: three-way merge after a conflict, where refusals are shown, sessions, safe redirects."""

from datetime import UTC, datetime, timedelta

from starlette.datastructures import FormData

from services.review.auth import ApiClient, Role
from services.review.domain.workflow import approval_problems
from services.review.web.forms import posted_sections, section_edit, sections_values
from services.review.web.review_page import fields_named, merged
from services.review.web.sessions import SessionCookies
from services.review.web.signed_in import local_path
from tests.unit.review.builders import opened


def test_a_merge_keeps_mine_takes_theirs_and_shows_both_where_both_changed() -> None:
    read = {"owner": "", "recommendations": "", "what_went_wrong": "", "resource_allocation": "old"}
    mine = {"owner": "erin", "recommendations": "", "what_went_wrong": "mine", "resource_allocation": "old"}
    current = {"owner": "eve", "recommendations": "theirs", "what_went_wrong": "", "resource_allocation": "old"}
    values, theirs = merged(mine, read, current)
    assert values == {
        "owner": "erin",
        "recommendations": "theirs",
        "what_went_wrong": "mine",
        "resource_allocation": "old",
    }
    assert theirs == {"owner": "eve"}


def test_every_reason_of_a_refused_approval_lands_next_to_its_fields() -> None:
    review = opened()
    reasons = approval_problems(review.model_copy(update={"required_sections": ["owner", "analysis.what_went_wrong"]}))
    placed = {field for reason in reasons for field in fields_named(reason)}
    assert {"owner", "what_went_wrong", "what_went_well", "factors", "recommendations"} <= placed
    assert "no_action_needed_reason" in placed


def test_a_form_saved_unchanged_asks_for_no_change() -> None:
    drawn = sections_values(opened())
    assert section_edit(drawn, drawn).model_fields_set == set()


def test_a_form_sends_only_what_was_changed() -> None:
    read = {"owner": "", "participants": [], "factors": [], "what_went_wrong": ""}
    form = FormData(
        [
            ("owner", "erin"),
            ("what_went_wrong", " a\n\n b "),
            ("participants-0-name", ""),
            ("participants-0-function", "it"),
        ]
    )
    posted = posted_sections(form)
    assert posted["participants"] == []  # a blank row is no participant
    edit = section_edit({**read, **{k: posted[k] for k in read}}, read)
    assert edit.model_fields_set == {"owner", "analysis"}
    assert edit.analysis is not None
    assert edit.analysis.what_went_wrong == ["a", "b"]


def test_a_session_cookie_cannot_be_altered_and_expires() -> None:
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    clock = [now]
    cookies = SessionCookies(b"secret", timedelta(minutes=10), lambda: clock[0])
    issued = cookies.issue(ApiClient(name="vic", role=Role.VIEWER))
    session = cookies.read(issued)
    assert session is not None
    assert session.client.role == Role.VIEWER
    payload, signature = issued.split(".")
    promoted = cookies.issue(ApiClient(name="vic", role=Role.ADMIN)).split(".")[0]
    assert cookies.read(f"{promoted}.{signature}") is None
    assert cookies.read(f"{payload}.{signature[:-2]}AA") is None
    assert SessionCookies(b"other", timedelta(minutes=10), lambda: clock[0]).read(issued) is None
    clock[0] = now + timedelta(minutes=10)
    assert cookies.read(issued) is None


def test_sign_in_sends_nobody_to_another_site() -> None:
    assert local_path("/review/1?x=2") == "/review/1?x=2"
    for elsewhere in ("https://evil.example/", "//evil.example/", "/\\evil.example", "", None):
        assert local_path(elsewhere) == "/"


def test_a_due_date_sent_without_seconds_is_not_a_change() -> None:
    read = {"owner": "", "due_at": "2026-12-02T10:00:00"}
    assert section_edit({"owner": "", "due_at": "2026-12-02T10:00"}, read).model_fields_set == set()
    assert section_edit({"owner": "", "due_at": "2026-12-03T10:00"}, read).model_fields_set == {"due_at"}
