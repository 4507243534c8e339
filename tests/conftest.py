"""Where the tests find real Kafka and a real MongoDB-compatible server.

In order: ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI`` from the environment (CI and the README start the local
stack and export them); else testcontainers (Apache Kafka, ``mongo:7`` as a one-node replica set) when a Docker
engine answers; else the local stack (``deploy/local/stack``), started for this session in a temporary folder on its
own ports and stopped at the end. Unit tests need none of this: the fixtures are only started when asked for.
"""

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.brokers import ConsumerKafka

REPO = Path(__file__).resolve().parent.parent
STACK = REPO / "deploy" / "local" / "stack"


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap: str
    mongodb_uri: str
    # Everything else a local stack started here printed (its SASL_SSL listener: LOCAL_KAFKA_SASL_SSL_*).
    stack_env: dict[str, str] = field(default_factory=dict)


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _containers() -> Iterator[Servers]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    # Transactions and change streams need a replica set, as in production.
    mongo = MongoDbContainer("mongo:7").with_command("--replSet rs0 --bind_ip_all")
    with KafkaContainer("apache/kafka:3.9.1").with_kraft() as kafka, mongo:
        mongo.exec(["mongosh", "--quiet", "--eval", "rs.initiate()"])
        host, port = mongo.get_container_host_ip(), mongo.get_exposed_port(27017)
        yield Servers(kafka.get_bootstrap_server(), f"mongodb://{host}:{port}/?directConnection=true")


def _local_stack(tmp: Path) -> Iterator[Servers]:
    env = {
        **os.environ,
        "LOCAL_STACK_DATA_DIR": str(tmp / "stack"),
        "LOCAL_KAFKA_PORT": os.environ.get("TEST_KAFKA_PORT", "29092"),
        "LOCAL_KAFKA_CONTROLLER_PORT": os.environ.get("TEST_KAFKA_CONTROLLER_PORT", "29093"),
        "LOCAL_MONGODB_PORT": os.environ.get("TEST_MONGODB_PORT", "28017"),
        "LOCAL_PROMETHEUS_PORT": os.environ.get("TEST_PROMETHEUS_PORT", "29090"),
    }
    subprocess.run([str(STACK), "up"], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        printed = subprocess.run([str(STACK), "env"], env=env, check=True, capture_output=True, text=True).stdout
        values = dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
        yield Servers(values["KAFKA_BOOTSTRAP_SERVERS"], values["MONGODB_URI"], values)
    finally:
        subprocess.run([str(STACK), "down"], env=env, check=False)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    kafka, mongo = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MONGODB_URI")
    if kafka and mongo:
        yield Servers(kafka, mongo)
    elif _docker_engine_answers():
        yield from _containers()
    else:
        yield from _local_stack(tmp_path_factory.mktemp("servers"))


@pytest.fixture
def unique() -> str:
    """A short random suffix, so tests sharing one broker and server never see each other's topics or data."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(params=["memory", pytest.param("real", marks=pytest.mark.integration)])
def kafka(request: pytest.FixtureRequest) -> ConsumerKafka:
    """Consumer tests run twice: on FastStream's in-memory broker, and on the real Kafka (``integration``)."""
    if request.param == "memory":
        return ConsumerKafka("memory")
    servers: Servers = request.getfixturevalue("servers")
    return ConsumerKafka("real", servers.kafka_bootstrap)
