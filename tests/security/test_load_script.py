"""benchmarks/load.py works (its figures are for benchmarks; here only that it runs, counts and verifies)."""
from __future__ import annotations

import pytest

from benchmarks.load import run_load
from labbook.core.services import token_create

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_run_load_logs_from_several_clients_and_verifies_every_point(asgi_server, user):
    _, token = token_create(user=user, name="load")
    report = run_load(asgi_server.url, token, clients=3, duration_s=2, batch=40, keys=2)
    assert report["errors"] == 0 and report["requests"] > 0
    assert report["verification"]["exact"] and report["verification"]["expected"] == report["points"] > 0
    assert set(report["latency_ms"]) >= {"p50", "p95", "p99"} and report["ok"]
