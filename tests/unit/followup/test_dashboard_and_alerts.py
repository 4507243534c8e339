"""The Grafana dashboard and Prometheus rules only use metrics the services really expose.

Each service's registry is built in-process as its app wires it (its own ``lessons_*`` metrics plus FastStream's
Kafka middleware), and every ``lessons_*``/``faststream_*`` name in a dashboard or rule expression must be one of
the sample names those registries produce.
"""

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry

from services.followup.metrics import FollowupMetrics
from services.ingest.metrics import IngestMetrics
from services.review.metrics import ReviewMetrics
from tests.conftest import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "incident-lessons.json"
DASHBOARD_PROVISIONING = REPO / "deploy" / "grafana" / "provisioning" / "dashboards" / "incident-lessons.yaml"
RULES = REPO / "deploy" / "prometheus" / "rules" / "incident-lessons.rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "rules" / "incident-lessons.rules.test.yml"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"

METRIC_NAME = re.compile(r"\b(?:lessons|faststream)_[a-zA-Z0-9_]+")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}
DURATION = re.compile(r"^\d+[smhdwy]$")


def sample_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry can expose, whether or not a labelled child exists yet."""
    return {family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]}


def with_kafka_metrics(registry: CollectorRegistry, app_name: str) -> CollectorRegistry:
    KafkaBroker("127.0.0.1:1", middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=app_name)])
    return registry


@pytest.fixture(scope="module")
def exposed() -> set[str]:
    registries = [
        with_kafka_metrics(IngestMetrics.create().registry, "ingest"),
        with_kafka_metrics(ReviewMetrics.create().registry, "review"),
        with_kafka_metrics(FollowupMetrics.create().registry, "followup"),
    ]
    return set().union(*(sample_names(registry) for registry in registries))


def dashboard_expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                yield panel["title"], target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard["panels"])


def rules(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for group in document["groups"]:
        yield from group["rules"]


def test_every_metric_on_the_dashboard_is_exposed(exposed: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used = {(title, name) for title, expr in dashboard_expressions(dashboard) for name in METRIC_NAME.findall(expr)}
    assert used, "the dashboard queries no lessons_* metric"
    assert sorted((title, name) for title, name in used if name not in exposed) == []


def test_every_metric_in_the_alert_rules_is_exposed(exposed: set[str]) -> None:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    used = {(rule["alert"], name) for rule in rules(document) for name in METRIC_NAME.findall(rule["expr"])}
    assert used
    assert sorted((alert, name) for alert, name in used if name not in exposed) == []


def test_the_dashboard_has_the_panels_the_issue_asks_for() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    titles = " | ".join(title for title, _ in dashboard_expressions(dashboard)).lower()
    for wanted in (
        "mttr",
        "review coverage",
        "review sla",
        "closure rate",
        "overdue",
        "proven effective",
        "not yet verified",
    ):
        assert wanted in titles
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "incident-lessons"
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    used_variables = set(re.findall(r"\$(\w+)", json.dumps(dashboard["panels"]))) - {"__rate_interval"}
    assert used_variables <= variables


def test_the_dashboard_is_provisioned_by_file() -> None:
    provisioning = yaml.safe_load(DASHBOARD_PROVISIONING.read_text(encoding="utf-8"))
    assert provisioning["apiVersion"] == 1
    (provider,) = provisioning["providers"]
    assert provider["type"] == "file"
    assert Path(provider["options"]["path"]).is_absolute()


def test_the_rules_file_is_well_formed() -> None:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names))
    alerts = [rule["alert"] for rule in rules(document)]
    assert len(alerts) == len(set(alerts))
    for rule in rules(document):
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        assert "for" not in rule or DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    assert all((PROMETHEUS_CONFIG.parent / path).is_file() for path in config["rule_files"])


def test_the_alerts_the_issue_asks_for_are_there() -> None:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    expressions = {rule["alert"]: rule["expr"] for rule in rules(document)}
    assert any("overdue" in expr for expr in expressions.values())
    assert any("lessons_followup_last_sweep_timestamp_seconds" in expr for expr in expressions.values())
    assert any("lessons_dlq_messages_total" in expr for expr in expressions.values())
    assert any("lessons_remediation_verification_inconclusive_age_seconds" in expr for expr in expressions.values())


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_the_alerts_fire_on_the_series_they_are_meant_for() -> None:
    result = subprocess.run(["promtool", "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
