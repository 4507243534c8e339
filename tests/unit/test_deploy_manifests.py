"""The compose file and Kubernetes manifests only name settings, ports and paths the services really have."""

from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from services.followup import settings as followup_settings
from services.ingest import settings as ingest_settings
from services.notify import settings as notify_settings
from services.review import settings as review_settings
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
PORTS = {"ingest": 8081, "review": 8082, "followup": 8083, "notify": 8084}


def known_variables() -> set[str]:
    names: set[str] = set()
    for module in (ingest_settings, review_settings, followup_settings, notify_settings):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseSettings) and value is not BaseSettings:
                prefix = value.model_config.get("env_prefix", "")
                names.update(f"{prefix}{field}".upper() for field in value.model_fields)
    return names


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_compose_services_use_known_settings_and_ports() -> None:
    compose = documents(DEPLOY / "compose" / "compose.yaml")[0]
    variables = known_variables()
    for name, port in PORTS.items():
        service = compose["services"][name]
        assert service["command"] == [f"services.{name}"]
        assert set(service["environment"]) <= variables
        assert service["ports"] == [f"127.0.0.1:{port}:{port}"]


def test_kubernetes_config_names_only_known_settings() -> None:
    (config,) = documents(DEPLOY / "kubernetes" / "config.yaml")
    assert set(config["data"]) <= known_variables()
    assert "MONGODB_URI" not in config["data"], "credentials belong in a Secret"


@pytest.mark.parametrize("name", sorted(PORTS))
def test_kubernetes_deployment_probes_routes_the_service_serves(name: str) -> None:
    deployment, service = documents(DEPLOY / "kubernetes" / f"{name}.yaml")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == [f"services.{name}"]
    assert container["ports"][0]["containerPort"] == PORTS[name]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert service["spec"]["ports"][0]["port"] == PORTS[name]
    app = import_module(f"services.{name}.app").create_app()
    served = set(app.openapi()["paths"])
    assert {"/healthz", "/readyz", "/metrics"} <= served
    kustomization = documents(DEPLOY / "kubernetes" / "kustomization.yaml")[0]
    assert f"{name}.yaml" in kustomization["resources"]
