"""Live events of a real job through the real ASGI server: latency, order, completeness."""
from __future__ import annotations

import subprocess
import sys

import pytest

from runner import services, streams
from tests.conftest import ROOT, subprocess_env
from tests.runner.sse import SSEClient, session_cookie
from tests.runner.support import _job_modules, count_spec, job_server, start_worker, wait_job  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def job_worker(transactional_db, tmp_path):
    proc = start_worker(tmp_path)
    yield proc
    proc.stop()


def test_metrics_reach_a_viewer_within_500_ms_p95_in_order(user, job_worker, job_server):  # noqa: F811
    job = services.job_submit(owner=user, spec=count_spec(steps=60, interval_ms=25))
    viewer = SSEClient(f"{job_server.url}/stream/runs/{job.run_id}/?last_id=0-0", session_cookie(user))
    events = viewer.events(10_000, timeout=40, types={"metrics", "status"},
                           until=lambda e: e["event"] == "status" and e["data"]["status"] != "running"
                           and e["data"]["status"] != "queued")
    viewer.close()

    points = [(p, e["received"]) for e in events if e["event"] == "metrics" for p in e["data"]["points"]]
    loss = [p["step"] for p, _ in points if p["key"] == "loss"]
    assert loss == list(range(60)), [(e["event"], e["data"].get("status"), e["data"].get("error")) for e in events]
    latencies = sorted(received - p["wall_time"] for p, received in points)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    assert p95 < 0.5, f"p95 latency {p95:.3f}s"
    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses[-1] == "succeeded" and "running" in statuses


def test_submit_job_command_follows_until_done(user, job_worker, tmp_path):  # noqa: F811
    spec = tmp_path / "spec.yaml"
    spec.write_text("kind: test_count\nproject: cli\nhyperparameters:\n  steps: 8\n  interval_ms: 20\n")
    result = subprocess.run(
        [sys.executable, "manage.py", "submit_job", str(spec), "--user", user.username,
         "--set", "hyperparameters.steps=9"],
        cwd=ROOT, env=subprocess_env(LABBOOK_JOB_MODULES="tests.runner.jobs_for_tests"),
        capture_output=True, text=True, timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout and "counting to 9" in result.stdout
    assert '"steps": 9' in result.stdout
    run_events = {event for _i, event, _d in streams.read_events(user.jobs.get().run_id)}
    assert "progress" in run_events
    assert wait_job(user.jobs.get().pk, {"succeeded"}).progress_step == 9
