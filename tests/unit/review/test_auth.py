"""API tokens: parsed from the setting without ever echoing a token, matched in constant time, ranked by role."""

import json

import pytest

from services.review.api import read_version
from services.review.auth import ApiClient, ApiTokens, Role, TokenSettingError
from services.review.http_problems import ApiProblemError

EDITOR_TOKEN = "e" * 32
VIEWER_TOKEN = "v" * 32


def test_tokens_identify_their_client_and_nothing_else() -> None:
    setting = {EDITOR_TOKEN: {"name": "erin", "role": "editor"}, VIEWER_TOKEN: {"name": "vic", "role": "viewer"}}
    tokens = ApiTokens.parse(json.dumps(setting))
    assert tokens.identify(EDITOR_TOKEN) == ApiClient(name="erin", role=Role.EDITOR)
    assert tokens.identify(VIEWER_TOKEN) == ApiClient(name="vic", role=Role.VIEWER)
    assert tokens.identify(EDITOR_TOKEN[:-1]) is None
    assert tokens.identify("") is None
    assert EDITOR_TOKEN not in repr(tokens)


def test_roles_are_ranked() -> None:
    assert Role.ADMIN.can(Role.EDITOR)
    assert Role.EDITOR.can(Role.VIEWER)
    assert not Role.VIEWER.can(Role.EDITOR)
    assert not Role.EDITOR.can(Role.ADMIN)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "REVIEW_API_TOKENS is not valid JSON"),
        ('["a"]', "must be a JSON object"),
        (f'{{"{EDITOR_TOKEN}": {{"name": "erin", "role": "root"}}}}', "entry #1: role: Input should be 'viewer'"),
        (f'{{"{EDITOR_TOKEN}": {{"name": "erin"}}}}', "entry #1: role: Field required"),
        ('{"short-token": {"name": "erin", "role": "editor"}}', "entry #1: the token is shorter than 16 characters"),
    ],
)
def test_a_bad_setting_is_named_without_showing_any_token(raw: str, message: str) -> None:
    with pytest.raises(TokenSettingError, match=message) as refused:
        ApiTokens.parse(raw)
    assert EDITOR_TOKEN not in str(refused.value)
    assert "short-token" not in str(refused.value)


@pytest.mark.parametrize(
    ("if_match", "body", "version"), [('"3"', None, 3), ("3", None, 3), ('W/"3"', None, 3), (None, 4, 4), ('"5"', 5, 5)]
)
def test_the_read_version_comes_from_if_match_or_the_body(if_match: str | None, body: int | None, version: int) -> None:
    assert read_version(if_match, body) == version


@pytest.mark.parametrize(("if_match", "body", "status"), [(None, None, 428), ('"x"', None, 422), ('"3"', 4, 422)])
def test_a_missing_or_unclear_version_is_refused(if_match: str | None, body: int | None, status: int) -> None:
    with pytest.raises(ApiProblemError) as refused:
        read_version(if_match, body)
    assert refused.value.status == status
