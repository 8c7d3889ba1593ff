"""Faults, with real processes: a worker killed with SIGKILL mid-job, Redis stopped under a running web server, and
the database "restarted" (every connection terminated and new ones refused for a few seconds) while the Python client
is logging. Nothing is lost, nothing is stored twice, and everything else keeps working."""
from __future__ import annotations

import os
import signal
import threading
import time

import psycopg
import pytest
import requests
from django.db import connection

from experiments import services as exp_services
from experiments.models import MetricPoint
from labbook.core.services import token_create
from runner import services
from runner.models import Job
from tests.conftest import start_asgi_server, wait_until
from tests.runner.sse import session_cookie
from tests.runner.support import (  # noqa: F401 - fixtures
    FAST,
    _job_modules,
    count_spec,
    private_redis,
    start_worker,
    start_worker_on,
    wait_job,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FINAL = {"succeeded", "failed", "lost", "cancelled"}


# --- kill -9 of a worker -------------------------------------------------------------------------------------------

def test_kill_9_of_a_worker_mid_job_loses_that_job_and_a_job_on_another_worker_is_unaffected(user, tmp_path):
    # Given a job running on worker A
    victim = start_worker(tmp_path, queues="cpu")
    doomed = services.job_submit(owner=user, spec=count_spec(steps=100_000, interval_ms=10))
    wait_job(doomed.pk, {"running"}, timeout=60)
    # And a second job running on worker B
    survivor_worker = start_worker(tmp_path, queues="cpu", purge=False)
    steps = 400  # ~8 s at 20 ms a step: it is still running when A dies and when A's job is declared lost
    survivor = services.job_submit(owner=user, spec=count_spec(steps=steps, interval_ms=20))
    try:
        running = wait_job(survivor.pk, {"running"}, timeout=60)
        assert running.worker_hostname == survivor_worker.hostname
        assert Job.objects.get(pk=doomed.pk).worker_hostname == victim.hostname

        # When worker A's whole process group is killed with SIGKILL
        os.killpg(victim.popen.pid, signal.SIGKILL)
        victim.popen.wait(timeout=10)

        # Then its job is lost within a minute
        lost = wait_job(doomed.pk, FINAL, timeout=60)
        assert lost.status == "lost" and "heartbeat" in lost.error
        assert lost.run.status == "lost"
        # And the job on worker B runs to the end with every point stored once
        done = wait_job(survivor.pk, FINAL, timeout=90)
        assert done.status == "succeeded", done.error
        assert done.attempts == 1
        assert MetricPoint.objects.filter(run=done.run, key="loss").count() == steps
        assert survivor_worker.popen.poll() is None
    finally:
        victim.stop(sig_kill=True)
        survivor_worker.stop()


# --- Redis stopped ---------------------------------------------------------------------------------------------------

def test_with_redis_stopped_reads_and_login_work_submission_is_queued_and_dispatched_once_redis_is_back(
        user, private_redis, tmp_path):  # noqa: F811
    web = start_asgi_server(tmp_path, REDIS_URL=private_redis.url, **FAST)
    worker = start_worker_on(tmp_path, private_redis.url)
    _, token = token_create(user=user, name="t")
    api = {"Authorization": f"Bearer {token}"}
    cookies = session_cookie(user)
    project = exp_services.project_get_or_create(owner=user, name="outage")
    run = exp_services.run_create(owner=user, project=project, name="before", config={"lr": 0.1})
    from experiments.ingest import Point

    exp_services.metrics_ingest(run=run, points=[Point("loss", i, 1.0 / (i + 1), 1.7e9 + i) for i in range(20)])
    earlier = services.job_submit(owner=user, spec=count_spec(steps=3))
    try:
        # When Redis stops
        private_redis.stop()

        # Then pages and API reads still answer 200
        for url in ("/today/", "/logs/", "/papers/", "/runs/", f"/runs/{run.pk}/", "/jobs/",
                    f"/jobs/{earlier.pk}/", "/search/?q=x", "/cost/"):
            response = requests.get(web.url + url, cookies=cookies, timeout=30)
            assert response.status_code == 200, (url, response.status_code, response.text[:500])
        for url in ("/api/runs/", f"/api/runs/{run.pk}/", f"/api/runs/{run.pk}/series/",
                    f"/api/runs/{run.pk}/series/loss/raw/", "/api/jobs/", f"/api/jobs/{earlier.pk}/", "/api/logs/",
                    "/api/search/?q=x"):
            response = requests.get(web.url + url, headers=api, timeout=30)
            assert response.status_code == 200, (url, response.status_code, response.text[:500])
        # And metric writes still land (live updates are best effort)
        write = requests.post(f"{web.url}/api/runs/{run.pk}/metrics/", headers=api, timeout=30,
                              json={"points": [{"key": "loss", "step": 20, "value": 0.01}]})
        assert write.status_code == 201, write.text
        # And a person can still log in (the login rate limit lives in Redis)
        login = requests.Session()
        page = login.get(f"{web.url}/login/", timeout=30)
        assert page.status_code == 200
        answer = login.post(f"{web.url}/login/", timeout=30, allow_redirects=False,
                            data={"username": "alice", "password": "correct horse battery staple",
                                  "csrfmiddlewaretoken": login.cookies["csrftoken"]},
                            headers={"Referer": f"{web.url}/login/"})
        assert answer.status_code == 302, (answer.status_code, answer.text[:500])
        # And the login rate limit still holds (counted in the web process while Redis is away)
        guesser = requests.Session()
        guesser.get(f"{web.url}/login/", timeout=30)
        codes = [guesser.post(f"{web.url}/login/", timeout=30, allow_redirects=False,
                              data={"username": "alice", "password": f"guess {i}",
                                    "csrfmiddlewaretoken": guesser.cookies["csrftoken"]},
                              headers={"Referer": f"{web.url}/login/"}).status_code for i in range(11)]
        assert codes == [200] * 10 + [429], codes

        # And a submitted job is accepted as queued, and the API says so
        submitted = requests.post(f"{web.url}/api/jobs/", json=count_spec(steps=5), headers=api, timeout=30)
        assert submitted.status_code == 202, submitted.text
        assert "broker is unreachable" in submitted.json()["message"]
        job = Job.objects.get(pk=submitted.json()["job"]["id"])
        assert job.status == "queued" and not job.dispatched

        # When Redis is back, the job is dispatched (once) and runs
        private_redis.start()
        done = wait_job(job.pk, FINAL, timeout=90)
        assert done.status == "succeeded", done.error
        assert done.dispatched and done.attempts == 1
        assert done.run.metric_points.filter(key="loss").count() == 5
    finally:
        worker.stop()
        web.stop()


# --- database restart ------------------------------------------------------------------------------------------------

class DatabaseOutage:
    """Terminate every backend of the test database except this test's own, and refuse new connections until
    ``end()``. The PostgreSQL service itself keeps running (other databases on it are not touched)."""

    def __init__(self):
        sd = connection.settings_dict
        self.db = sd["NAME"]
        self.admin_url = (f"postgresql://{sd.get('USER') or 'postgres'}@{sd.get('HOST') or '127.0.0.1'}:"
                          f"{sd.get('PORT') or 5432}/postgres")
        connection.ensure_connection()
        self.own_pid = connection.connection.info.backend_pid

    def begin(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{self.db}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                          (self.db, self.own_pid))

    def end(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{self.db}" ALLOW_CONNECTIONS true')


def test_database_restart_while_the_client_logs_loses_nothing_stores_nothing_twice_and_workers_reconnect(
        user, tmp_path):
    import labbook.client as lbc

    assert connection.vendor == "postgresql", "this test needs PostgreSQL (./lab test uses it when it is running)"
    web = start_asgi_server(tmp_path)
    worker = start_worker(tmp_path)
    _, token = token_create(user=user, name="client")
    outage = DatabaseOutage()
    steps = 400
    run = lbc.init(project="db-restart", name="through an outage", url=web.url, token=token, batch_size=40,
                   flush_interval=0.05, capture_env=False, offline_fallback=False, offline_dir=tmp_path / "offline")
    logged = threading.Event()

    def log_steps():
        for step in range(steps):
            run.log({"loss": 1.0 / (step + 1), "acc": step / steps}, step=step)
            time.sleep(0.015)  # a training loop's pace: ~6 s of logging spans the outage
        logged.set()

    logger = threading.Thread(target=log_steps, daemon=True)
    try:
        logger.start()
        wait_until(lambda: MetricPoint.objects.filter(run_id=run.id).count() >= 40, timeout=30,
                   message="the first points to arrive")

        # When the database goes away (every connection killed, new ones refused) while the client is logging
        outage.begin()
        try:
            wait_until(lambda: run.last_error is not None, timeout=30, message="the client to notice the outage")
            time.sleep(2)  # the outage lasts a little while longer: the client keeps buffering and retrying
        finally:
            outage.end()

        # Then, once it is back, the client resends what it buffered: every point stored exactly once
        logger.join(timeout=60)
        assert logged.is_set()
        run.finish(timeout=120)
        stored = MetricPoint.objects.filter(run_id=run.id)
        assert stored.count() == 2 * steps
        assert stored.values("key", "step").distinct().count() == 2 * steps
        assert sorted(stored.filter(key="loss").values_list("step", flat=True)) == list(range(steps))

        # And the worker reconnects: a job submitted afterwards runs to the end
        job = services.job_submit(owner=user, spec=count_spec(steps=5))
        done = wait_job(job.pk, FINAL, timeout=90)
        assert done.status == "succeeded", (done.error, worker.log()[-3000:])
        assert worker.popen.poll() is None
    finally:
        outage.end()
        worker.stop()
        web.stop()
