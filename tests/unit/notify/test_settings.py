"""Notify's settings: credentials stay secret, webhooks are https unless allowed, the routing file is checked whole."""

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from services.notify.domain.routing import RoutingError
from services.notify.routing_file import load_routing
from services.notify.settings import NotifySettings
from tests.unit.notify.builders import EXAMPLE_ROUTING

SECRET_URL = "https://hooks.slack.example/services/T000/B000/SECRETPART"


def test_webhook_urls_and_the_smtp_password_are_never_shown() -> None:
    settings = NotifySettings(
        webhook_urls=SecretStr(f'{{"payments-chat": "{SECRET_URL}"}}'),
        smtp_username="notify",
        smtp_password=SecretStr("hunter2-for-test"),
    )
    shown = repr(settings) + str(settings.model_dump())
    assert "SECRETPART" not in shown
    assert "hunter2" not in shown
    assert settings.webhooks()["payments-chat"].get_secret_value() == SECRET_URL


@pytest.mark.parametrize("url", ["http://hooks.example/x", "ftp://hooks.example/x", "https:///no-host", "not a url"])
def test_a_webhook_must_be_https_and_the_error_does_not_show_it(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        NotifySettings(webhook_urls=SecretStr(f'{{"team": "{url}"}}'))
    assert "NOTIFY_WEBHOOK_URLS['team'] must be an https URL" in str(refused.value)
    assert url not in str(refused.value)


def test_http_webhooks_only_when_allowed_for_local_testing() -> None:
    settings = NotifySettings(webhook_urls=SecretStr('{"team": "http://127.0.0.1:9/hook"}'), allow_http_webhooks=True)
    assert list(settings.webhooks()) == ["team"]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"webhook_urls": SecretStr("[1, 2]")}, "must map destination names"),
        ({"webhook_urls": SecretStr("{")}, "not valid JSON"),
        ({"smtp_username": "notify"}, "go together"),
        (
            {"smtp_username": "n", "smtp_password": SecretStr("p"), "smtp_security": "none"},
            "never a clear password",
        ),
        ({"review_ui_base_url": "javascript:alert(1)"}, "review_ui_base_url"),
    ],
)
def test_bad_settings_stop_start_up(values: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        NotifySettings.model_validate(values)


def test_email_is_a_channel_only_with_an_smtp_server() -> None:
    assert NotifySettings().channels == frozenset({"chat"})
    assert NotifySettings(smtp_host="smtp.example.org").channels == frozenset({"chat", "email"})


def test_a_chat_destination_without_a_url_stops_start_up() -> None:
    with pytest.raises(RoutingError, match="without a URL in NOTIFY_WEBHOOK_URLS: leadership-teams"):
        load_routing(EXAMPLE_ROUTING, {"payments-chat": SecretStr(SECRET_URL)})


def test_a_missing_routing_file_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(RoutingError, match="cannot read the routing file"):
        load_routing(tmp_path / "absent.yaml", {})
    assert load_routing(None, {}).people == {}
