"""``INGEST_WEBHOOK_*`` variables: parsed as documented, refused when wrong, and never echoing a secret."""

import os

import pytest
from pydantic import ValidationError

from services.ingest.webhooks.auth import source_auth
from services.ingest.webhooks.settings import WebhookSettings

SECRET = "do-not-print-me-7f3a"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("INGEST_WEBHOOK_"):
            monkeypatch.delenv(name)


def test_defaults_are_closed_with_a_limit_that_fits_a_kafka_record_and_a_ten_second_publish_timeout() -> None:
    settings = WebhookSettings()
    assert settings.record_limit_bytes == 1024 * 1024  # aiokafka's default max_request_size
    assert settings.max_body_bytes == 1024 * 1024 - 16 * 1024
    assert settings.publish_timeout_seconds == 10.0
    assert settings.signature_tolerance_seconds == 300
    assert settings.allow_unauthenticated == []
    checks = source_auth(settings)
    assert not any(check.configured or check.open for check in checks.values())


def test_variables_take_json_or_a_single_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_WEBHOOK_PAGERDUTY_SECRETS", '["new", "old"]')
    monkeypatch.setenv("INGEST_WEBHOOK_GRAFANA_SECRETS", "only-one")
    monkeypatch.setenv("INGEST_WEBHOOK_INCIDENTIO_SECRETS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    monkeypatch.setenv("INGEST_WEBHOOK_BEARER_TOKENS", '{"opsgenie": "t1", "datadog": ["t2", "t3"]}')
    monkeypatch.setenv("INGEST_WEBHOOK_BASIC_AUTH", '{"alertmanager": ["am:pw"]}')
    monkeypatch.setenv("INGEST_WEBHOOK_ALLOW_UNAUTHENTICATED", "Generic")
    monkeypatch.setenv("INGEST_WEBHOOK_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("INGEST_WEBHOOK_PUBLISH_TIMEOUT_SECONDS", "2.5")
    settings = WebhookSettings()
    assert [s.get_secret_value() for s in settings.pagerduty_secrets] == ["new", "old"]
    assert [s.get_secret_value() for s in settings.grafana_secrets] == ["only-one"]
    assert {k: [s.get_secret_value() for s in v] for k, v in settings.bearer_tokens.items()} == {
        "opsgenie": ["t1"],
        "datadog": ["t2", "t3"],
    }
    assert settings.allow_unauthenticated == ["generic"]
    assert (settings.max_body_bytes, settings.publish_timeout_seconds) == (2048, 2.5)
    checks = source_auth(settings)
    assert {name for name, check in checks.items() if check.configured} == {
        "pagerduty",
        "grafana",
        "incidentio",
        "opsgenie",
        "datadog",
        "alertmanager",
    }
    assert checks["generic"].open
    assert not checks["zabbix"].configured
    assert not checks["zabbix"].open


def test_secrets_are_masked_in_reprs() -> None:
    settings = WebhookSettings(
        pagerduty_secrets=[SECRET],
        bearer_tokens={"opsgenie": [SECRET]},
        basic_auth={"zabbix": [f"user:{SECRET}"]},
    )
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())
    assert SECRET not in repr(source_auth(settings))


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("INGEST_WEBHOOK_BEARER_TOKENS", f'{{"nagios": ["{SECRET}"]}}', "unknown source"),
        ("INGEST_WEBHOOK_BASIC_AUTH", f'{{"zabbix": ["{SECRET}"]}}', "user:password"),
        ("INGEST_WEBHOOK_BASIC_AUTH", f'{{"zabbix": [":{SECRET}"]}}', "user:password"),
        ("INGEST_WEBHOOK_INCIDENTIO_SECRETS", f"whsec_{SECRET}!", "Svix signing secret"),
        ("INGEST_WEBHOOK_PAGERDUTY_SECRETS", '["  "]', "empty secret"),
        ("INGEST_WEBHOOK_BEARER_TOKENS", '{"opsgenie": [""]}', "empty secret"),
        ("INGEST_WEBHOOK_ALLOW_UNAUTHENTICATED", '["generic", "nagios"]', "unknown source"),
        ("INGEST_WEBHOOK_MAX_BODY_BYTES", "0", "greater than 0"),
        ("INGEST_WEBHOOK_MAX_BODY_BYTES", "1048576", "INGEST_WEBHOOK_MAX_BODY_BYTES is 1048576: at most 1032192"),
        ("INGEST_WEBHOOK_RECORD_LIMIT_BYTES", "1000", "greater than 16384"),
    ],
)
def test_a_misconfiguration_fails_at_start_up_without_printing_the_secret(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, complaint: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        WebhookSettings()
    assert complaint in str(caught.value)
    assert SECRET not in str(caught.value)
