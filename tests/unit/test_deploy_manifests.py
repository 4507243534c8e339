"""The compose file and Kubernetes manifests only name settings, ports and paths the services really have."""

import shutil
import subprocess
from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings

from services.followup import settings as followup_settings
from services.followup.settings import PrometheusSettings
from services.ingest import settings as ingest_settings
from services.notify import settings as notify_settings
from services.review import settings as review_settings
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
PORTS = {"ingest": 8081, "review": 8082, "followup": 8083, "notify": 8084}
# Settings a service starts without but then cannot do its job: every deployment must set them.
REQUIRED = {"followup": {"FOLLOWUP_PROMETHEUS_URL"}}  # else metric and alert verifications stay inconclusive


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


def kubernetes_environment(name: str) -> set[str]:
    """The variables a service's Deployment sets from the shared ConfigMap and its own ``env``."""
    deployment, _ = documents(DEPLOY / "kubernetes" / f"{name}.yaml")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (config,) = documents(DEPLOY / "kubernetes" / "config.yaml")
    names = {variable["name"] for variable in container.get("env", [])}
    if {"configMapRef": {"name": config["metadata"]["name"]}} in container.get("envFrom", []):
        names |= set(config["data"])
    return names


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_compose_and_kubernetes_set_what_a_service_needs_to_do_its_job(name: str) -> None:
    compose = documents(DEPLOY / "compose" / "compose.yaml")[0]
    assert REQUIRED[name] <= set(compose["services"][name]["environment"]), "compose"
    assert REQUIRED[name] <= kubernetes_environment(name), "kubernetes"


def test_compose_gives_followup_its_own_prometheus_that_scrapes_the_services_and_loads_the_rules() -> None:
    compose = documents(DEPLOY / "compose" / "compose.yaml")[0]
    url = compose["services"]["followup"]["environment"]["FOLLOWUP_PROMETHEUS_URL"]
    PrometheusSettings(url=url)  # raises if the settings would refuse it at start-up
    prometheus = compose["services"][urlsplit(url).hostname]
    assert f"127.0.0.1:{urlsplit(url).port}:{urlsplit(url).port}" in prometheus["ports"]
    mounts = dict(volume.split(":")[:2] for volume in prometheus["volumes"])
    assert mounts["./prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert mounts["../prometheus/rules"] == "/etc/prometheus/rules"
    config = documents(DEPLOY / "compose" / "prometheus.yml")
    assert config[0]["rule_files"] == ["/etc/prometheus/rules/*.rules.yml"]
    jobs = config[0]["scrape_configs"]
    targets = {target for job in jobs for static in job["static_configs"] for target in static["targets"]}
    assert targets == {f"{name}:{port}" for name, port in PORTS.items()}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_compose_prometheus_config() -> None:
    config = DEPLOY / "compose" / "prometheus.yml"
    result = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_points_followup_at_a_prometheus_the_settings_accept() -> None:
    (config,) = documents(DEPLOY / "kubernetes" / "config.yaml")
    PrometheusSettings(url=config["data"]["FOLLOWUP_PROMETHEUS_URL"])
