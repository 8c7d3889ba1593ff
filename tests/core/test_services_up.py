"""The real components: a Celery worker answers through Redis, /healthz reports all of them, production settings are
clean under ``check --deploy``."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.e2e
def test_a_real_worker_runs_the_health_task_through_redis(celery_worker):
    from labbook.celery import health

    result = health.apply_async(queue="cpu").get(timeout=30)
    assert result["ok"] is True and result["pid"] != os.getpid()


@pytest.mark.e2e
def test_healthz_reports_database_broker_and_worker(celery_worker, client):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert celery_worker.hostname in body["workers"]["workers"]


@pytest.mark.django_db
def test_healthz_is_503_without_a_worker(client):
    # No worker fixture here: no worker consumes from this test run's broker database.
    response = client.get("/healthz")
    body = response.json()
    assert body["database"]["ok"] is True and body["broker"]["ok"] is True
    assert response.status_code == 503 and body["ok"] is False and body["workers"]["count"] == 0


def test_production_settings_pass_check_deploy(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "LABBOOK_ENV": "production",
        "SECRET_KEY": "x" * 30 + "y7#kq2!vL0pZ@rT9^wN4&hG6*bF1",
        "ALLOWED_HOSTS": "labbook.example.org",
        "LABBOOK_DATA_DIR": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "SECRET_KEY_FILE")}
    env.update({"LABBOOK_ENV": "production", "LABBOOK_DATA_DIR": str(tmp_path), "ALLOWED_HOSTS": "x"})
    out = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and "SECRET_KEY" in out.stderr


@pytest.mark.e2e
def test_up_command_starts_web_and_worker_and_prints_login(tmp_path):
    """The README's start path: migrate, embedded Redis when REDIS_URL is unset, web + worker, URL and password."""
    import json
    import signal
    import socket
    import urllib.request

    from tests.conftest import wait_until

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"LABBOOK_DATA_DIR": str(tmp_path), "LABBOOK_NONINTERACTIVE": "1", "PYTHONUNBUFFERED": "1"})
    log = tmp_path / "up.log"
    proc = subprocess.Popen([sys.executable, "manage.py", "up", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: "one-time password" in log.read_text(), timeout=120, message="login hint")
        text = log.read_text()
        assert f"http://127.0.0.1:{port}/" in text

        def healthy():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    return json.loads(r.read())
            except Exception:  # noqa: BLE001 - 503 until the worker is ready
                return None

        body = wait_until(healthy, timeout=120, interval=0.5, message="/healthz all ok")
        assert body["ok"] and body["workers"]["count"] >= 1
        assert (tmp_path / "redis" / "redis.json").exists()  # the embedded Redis was started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        state = tmp_path / "redis" / "redis.pid"
        if state.exists():
            os.kill(int(state.read_text().strip()), signal.SIGTERM)
