"""KAFKA_* settings: TLS and SASL reach the clients, and every wrong or inconsistent combination stops start-up."""

import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError

from servicekit.kafka_settings import KafkaSettings

PASSWORD = "s3cret-Pa55word"


@pytest.fixture(autouse=True)
def _no_kafka_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test states its settings; whatever KAFKA_* the shell or CI exported must not leak in."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("KAFKA_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed certificate (also usable as a CA file), its key, and the key encrypted with PASSWORD."""
    folder = tmp_path_factory.mktemp("pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=client", "-keyout", "key.pem", "-out", "cert.pem"],
        cwd=folder, check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-in", "key.pem", "-out", "key-encrypted.pem", "-passout", f"pass:{PASSWORD}"],
        cwd=folder, check=True, capture_output=True,
    )  # fmt: skip
    (folder / "not-pem.txt").write_text("hello\n")
    return {
        "cert": folder / "cert.pem",
        "key": folder / "key.pem",
        "encrypted_key": folder / "key-encrypted.pem",
        "not_pem": folder / "not-pem.txt",
    }


def _sasl_ssl(**overrides: Any) -> dict[str, Any]:
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "lessons",
        "sasl_password": PASSWORD,
        **overrides,
    }


def _refusal(**settings: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        KafkaSettings(**settings)
    return str(refused.value)


def test_plaintext_by_default_adds_nothing() -> None:
    settings = KafkaSettings()
    assert settings.security_protocol == "PLAINTEXT"
    assert settings.client_options() == {}
    assert settings.aiokafka_options() == {}


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, pem: dict[str, Path]) -> None:
    """The defect: KAFKA_SECURITY_PROTOCOL and friends were silently ignored and every connection was plaintext."""
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "lessons")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("KAFKA_SSL_CA_FILE", str(pem["cert"]))

    options = KafkaSettings().aiokafka_options()

    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["sasl_plain_username"] == "lessons"
    assert options["sasl_plain_password"] == PASSWORD
    assert isinstance(options["ssl_context"], ssl.SSLContext)


@pytest.mark.parametrize(
    ("mechanism", "security_class"),
    [("PLAIN", SASLPlaintext), ("SCRAM-SHA-256", SASLScram256), ("SCRAM-SHA-512", SASLScram512)],
)
def test_sasl_ssl_gives_the_broker_and_aiokafka_the_same_options(
    mechanism: str, security_class: type[BaseSecurity], pem: dict[str, Path]
) -> None:
    settings = KafkaSettings(**_sasl_ssl(sasl_mechanism=mechanism, ssl_ca_file=pem["cert"]))

    security = settings.client_options()["security"]

    assert isinstance(security, security_class)
    assert security.use_ssl
    # What FastStream's KafkaBroker hands to aiokafka is exactly what plain aiokafka clients get.
    assert parse_security(security) == settings.aiokafka_options()
    context = settings.aiokafka_options()["ssl_context"]
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_ssl_with_client_certificate(pem: dict[str, Path]) -> None:
    settings = KafkaSettings(
        security_protocol="SSL",
        ssl_ca_file=pem["cert"],
        ssl_cert_file=pem["cert"],
        ssl_key_file=pem["encrypted_key"],
        ssl_key_password=PASSWORD,
    )
    security = settings.client_options()["security"]
    assert type(security) is BaseSecurity
    assert parse_security(security) == {"security_protocol": "SSL", "ssl_context": settings.ssl_context}


def test_sasl_plaintext_when_explicitly_allowed() -> None:
    settings = KafkaSettings(**_sasl_ssl(security_protocol="SASL_PLAINTEXT", allow_plaintext_sasl=True))
    options = settings.aiokafka_options()
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["ssl_context"] is None
    assert parse_security(settings.client_options()["security"]) == options


def test_protocol_and_mechanism_are_case_insensitive() -> None:
    settings = KafkaSettings(**_sasl_ssl(security_protocol="sasl_ssl", sasl_mechanism="scram-sha-512"))
    assert (settings.security_protocol, settings.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        pytest.param(
            {"security_protocol": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS' is not one of", id="unknown-protocol"
        ),
        pytest.param(_sasl_ssl(sasl_mechanism="GSSAPI"), "KAFKA_SASL_MECHANISM='GSSAPI'", id="unknown-mechanism"),
        pytest.param({"sasl_mechanism": "PLAIN"}, "KAFKA_SASL_MECHANISM set, but", id="mechanism-without-sasl"),
        pytest.param(
            {"security_protocol": "SSL", "sasl_username": "u", "sasl_password": "p"},
            "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD set, but KAFKA_SECURITY_PROTOCOL=SSL uses no SASL",
            id="credentials-without-sasl",
        ),
        pytest.param(_sasl_ssl(sasl_mechanism=None), "needs KAFKA_SASL_MECHANISM", id="sasl-without-mechanism"),
        pytest.param(_sasl_ssl(sasl_username=None), "needs KAFKA_SASL_USERNAME", id="sasl-without-username"),
        pytest.param(_sasl_ssl(sasl_password=None), "needs KAFKA_SASL_PASSWORD", id="sasl-without-password"),
        pytest.param(_sasl_ssl(sasl_password=""), "needs KAFKA_SASL_PASSWORD", id="sasl-empty-password"),
        pytest.param(
            _sasl_ssl(security_protocol="SASL_PLAINTEXT"), "KAFKA_ALLOW_PLAINTEXT_SASL=true", id="sasl-without-tls"
        ),
    ],
)
def test_refused_combinations_name_the_setting(settings: dict[str, Any], named: str) -> None:
    assert named in _refusal(**settings)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        pytest.param(
            {"ssl_ca_file": "cert"}, "KAFKA_SSL_CA_FILE set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no TLS",
            id="ca-without-tls",
        ),
        pytest.param(
            _sasl_ssl(security_protocol="SASL_PLAINTEXT", allow_plaintext_sasl=True, ssl_ca_file="cert"),
            "uses no TLS", id="ca-with-sasl-plaintext",
        ),
        pytest.param(
            {"security_protocol": "SSL", "ssl_cert_file": "cert"},
            "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together",
            id="cert-without-key",
        ),
        pytest.param(
            {"security_protocol": "SSL", "ssl_key_file": "key"},
            "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together",
            id="key-without-cert",
        ),
        pytest.param(
            {"security_protocol": "SSL", "ssl_key_password": "x"},
            "KAFKA_SSL_KEY_PASSWORD set without KAFKA_SSL_KEY_FILE",
            id="key-password-without-key",
        ),
        pytest.param({"security_protocol": "SSL", "ssl_ca_file": "missing"}, "KAFKA_SSL_CA_FILE=", id="missing-ca"),
        pytest.param(
            {"security_protocol": "SSL", "ssl_cert_file": "cert", "ssl_key_file": "missing"}, "KAFKA_SSL_KEY_FILE=",
            id="missing-key",
        ),
        pytest.param(
            {"security_protocol": "SSL", "ssl_ca_file": "not_pem"}, "KAFKA_SSL_CA_FILE=", id="ca-not-pem",
        ),
        pytest.param(
            {"security_protocol": "SSL", "ssl_cert_file": "cert", "ssl_key_file": "encrypted_key",
             "ssl_key_password": "wrong"},
            "wrong KAFKA_SSL_KEY_PASSWORD", id="wrong-key-password",
        ),
    ],
)  # fmt: skip
def test_refused_tls_files_name_the_setting(settings: dict[str, Any], named: str, pem: dict[str, Path]) -> None:
    files = {"ssl_ca_file", "ssl_cert_file", "ssl_key_file"}
    resolved = {
        key: (pem[value] if value in pem else pem["cert"].parent / value) if key in files else value
        for key, value in settings.items()
    }
    message = _refusal(**resolved)
    assert named in message
    if "missing" in settings.values():
        assert "no such file" in message


def test_misspelt_variable_is_refused_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo used to leave the service silently in plaintext."""
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOLL", "SASL_SSL")
    message = _refusal()
    assert "KAFKA_SECURITY_PROTOCOLL (did you mean KAFKA_SECURITY_PROTOCOL?)" in message


@pytest.mark.parametrize(
    "name", ["KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_PORT", "KAFKA_PORT_9092_TCP_ADDR", "KAFKA_SERVICE_HOST"]
)
def test_variables_of_kafka_scripts_and_kubernetes_are_tolerated(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "tcp://10.0.0.1:9092")
    assert KafkaSettings().security_protocol == "PLAINTEXT"


def test_unknown_keyword_is_refused() -> None:
    assert "ssl_cafile" in _refusal(ssl_cafile="ca.pem")


def test_secrets_never_show(pem: dict[str, Path]) -> None:
    settings = KafkaSettings(
        **_sasl_ssl(
            ssl_ca_file=pem["cert"], ssl_cert_file=pem["cert"], ssl_key_file=pem["encrypted_key"],
            ssl_key_password=PASSWORD,
        )
    )  # fmt: skip
    for shown in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.client_options())):
        assert PASSWORD not in shown
        assert "lessons" not in shown
    # Nor in a refusal, which pydantic would otherwise print with the raw input.
    assert PASSWORD not in _refusal(**_sasl_ssl(security_protocol="SASL_PLAINTEXT"))
