"""Kafka over SASL_SSL against the real broker: the local stack's SASL_SSL listener (its own CA, one user).

The stack prints what a client needs as LOCAL_KAFKA_SASL_SSL_* (``deploy/local/stack env``); CI exports those lines,
and a stack the tests start themselves hands them over through ``Servers.stack_env``.
"""

import asyncio
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from servicekit.kafka_connection_check import KafkaConnectionRefusedError, check_kafka_connection
from servicekit.kafka_settings import KafkaSettings
from tests.conftest import Servers
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

_PREFIX = "LOCAL_KAFKA_SASL_SSL_"


@dataclass(frozen=True)
class SaslSslListener:
    bootstrap: str
    ca_file: Path
    mechanisms: tuple[str, ...]
    username: str
    password: str

    def settings(self, mechanism: str, **overrides: Any) -> KafkaSettings:
        values: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_SSL",
            "ssl_ca_file": self.ca_file,
            "sasl_mechanism": mechanism,
            "sasl_username": self.username,
            "sasl_password": self.password,
            **overrides,
        }
        return KafkaSettings(**values)


@pytest.fixture(scope="session")
def listener(servers: Servers) -> SaslSslListener:
    def value(name: str) -> str | None:
        return os.environ.get(_PREFIX + name) or servers.stack_env.get(_PREFIX + name)

    bootstrap, ca_file, password_file = value("BOOTSTRAP_SERVERS"), value("CA_FILE"), value("PASSWORD_FILE")
    if not (bootstrap and ca_file and password_file):
        pytest.skip(
            f"no SASL_SSL listener: {_PREFIX}* not set (the local stack prints them with `deploy/local/stack env`; "
            "a stack started before the listener existed, or with LOCAL_KAFKA_SASL_SSL_PORT=off, has none)"
        )
    return SaslSslListener(
        bootstrap=bootstrap,
        ca_file=Path(ca_file),
        mechanisms=tuple((value("MECHANISMS") or "PLAIN").split(",")),
        username=value("USERNAME") or "lessons",
        password=Path(password_file).read_text().strip(),
    )


@pytest.fixture(scope="module")
def untrusted_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second CA, which did not sign the broker's certificate."""
    folder = tmp_path_factory.mktemp("other-ca")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=some other CA", "-keyout", "ca.key", "-out", "ca.pem",
         "-addext", "basicConstraints=critical,CA:TRUE"],
        cwd=folder, check=True, capture_output=True,
    )  # fmt: skip
    return folder / "ca.pem"


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_service_built_broker_produces_and_consumes_over_sasl_ssl(
    listener: SaslSslListener, mechanism: str, unique: str
) -> None:
    if mechanism not in listener.mechanisms:
        pytest.skip(f"the stack's SASL_SSL user has no {mechanism} credentials (its Kafka data dir predates them)")
    settings = listener.settings(mechanism)
    topic = f"sasl-ssl-{unique}"
    received: list[bytes] = []
    # Built the way the services build theirs: servers plus client_options().
    broker = KafkaBroker(settings.bootstrap_servers, acks="all", enable_idempotence=True, **settings.client_options())

    @broker.subscriber(topic, group_id=f"sasl-ssl-{unique}", auto_offset_reset="earliest", ack_policy=AckPolicy.ACK)
    async def collect(body: bytes) -> None:
        received.append(body)

    async with broker:
        await broker.start()
        await broker.publish(b"over TLS and " + mechanism.encode(), topic)

        async def seen() -> list[bytes]:
            return received

        assert await eventually(seen, lambda got: len(got) == 1, timeout=30) == [b"over TLS and " + mechanism.encode()]

    # A plain aiokafka client gets there with the same settings.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
        **settings.aiokafka_options(),
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert record.value == b"over TLS and " + mechanism.encode()
    await check_kafka_connection(settings)


async def _broker_start_fails(settings: KafkaSettings) -> None:
    broker = KafkaBroker(settings.bootstrap_servers, **settings.client_options())
    try:
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(broker.start(), 30)
    finally:
        await broker.stop()


async def test_wrong_password_is_refused_with_a_clear_message(
    listener: SaslSslListener, caplog: pytest.LogCaptureFixture
) -> None:
    mechanism = listener.mechanisms[-1]
    settings = listener.settings(mechanism, sasl_password="not-the-password")

    with caplog.at_level(logging.ERROR):
        await _broker_start_fails(settings)
    assert "SaslAuthenticationFailed" in caplog.text  # aiokafka logs the cause, then raises "Unable to bootstrap"

    with pytest.raises(KafkaConnectionRefusedError) as refused:
        await check_kafka_connection(settings)
    message = str(refused.value)
    assert f"SASL authentication failed with KAFKA_SASL_MECHANISM={mechanism}" in message
    assert "KAFKA_SASL_PASSWORD" in message
    assert "not-the-password" not in message
    assert "not-the-password" not in caplog.text


async def test_untrusted_ca_is_refused_with_a_clear_message(
    listener: SaslSslListener, untrusted_ca: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = listener.settings(listener.mechanisms[0], ssl_ca_file=untrusted_ca)

    with caplog.at_level(logging.ERROR):
        await _broker_start_fails(settings)
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text

    with pytest.raises(KafkaConnectionRefusedError) as refused:
        await check_kafka_connection(settings)
    assert "the broker's TLS certificate is not trusted" in str(refused.value)
    assert "KAFKA_SSL_CA_FILE" in str(refused.value)


async def test_tls_against_the_plaintext_listener_is_refused_with_a_clear_message(
    listener: SaslSslListener, servers: Servers
) -> None:
    settings = listener.settings(listener.mechanisms[0], bootstrap_servers=servers.kafka_bootstrap)
    with pytest.raises(KafkaConnectionRefusedError) as refused:
        await check_kafka_connection(settings, timeout_seconds=5)
    assert "KAFKA_SECURITY_PROTOCOL=SASL_SSL" in str(refused.value)
