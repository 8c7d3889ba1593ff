"""docker-compose.yml holds the multi-host layout the README documents: PostgreSQL, Redis, web, a CPU worker and a GPU
worker with a device reservation, health checks, volumes for the database and artifacts, and no default secrets."""
from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_have_health_checks_and_persistent_volumes():
    services = _compose()["services"]
    assert {"postgres", "redis", "web", "worker", "worker-gpu"} <= set(services)
    for name in ("postgres", "redis", "web", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert any(v.startswith("pgdata:") for v in services["postgres"]["volumes"])
    for name in ("web", "worker", "worker-gpu"):
        assert "artifacts:/artifacts" in services[name]["volumes"], name
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_workers_serve_their_device_class_queue_one_job_at_a_time():
    services = _compose()["services"]
    cpu, gpu = services["worker"]["command"], services["worker-gpu"]["command"]
    assert cpu[cpu.index("-Q") + 1] == "cpu" and cpu[cpu.index("-c") + 1] == "1"
    assert gpu[gpu.index("-Q") + 1] == "gpu" and gpu[gpu.index("-c") + 1] == "1"
    device = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["capabilities"] == ["gpu"] and device["count"] == 1


def test_secrets_have_no_defaults():
    text = (ROOT / "docker-compose.yml").read_text()
    for name in ("SECRET_KEY", "POSTGRES_PASSWORD"):
        uses = re.findall(r"\$\{" + name + r"(:?[-?])?[^}]*\}", text)
        assert uses, name
        assert all(op.endswith("?") for op in uses), f"{name} must be required (${{{name}:?...}}), not defaulted"
    assert _compose()["x-labbook-env"]["LABBOOK_ENV"] == "production"
