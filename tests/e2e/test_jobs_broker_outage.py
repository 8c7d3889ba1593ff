"""A broker outage at submit time never loses a job: it stays queued, the API says so, and it runs once the broker
is back. A private redis-server (not the shared one) is stopped and restarted for real."""
from __future__ import annotations

import time

import pytest
import requests

from labbook.core.services import token_create
from runner.models import Job
from tests.conftest import start_asgi_server
from tests.runner.support import FAST, _job_modules, count_spec, private_redis, start_worker_on, wait_job  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_job_submitted_while_broker_is_down_is_dispatched_when_it_is_back(user, private_redis, tmp_path):  # noqa: F811
    # Given a web server and a worker that share a broker
    web = start_asgi_server(tmp_path, REDIS_URL=private_redis.url, **FAST)
    worker = start_worker_on(tmp_path, private_redis.url)
    _, token = token_create(user=user, name="t")
    try:
        # When the broker goes down and a job is submitted
        private_redis.stop()
        resp = requests.post(f"{web.url}/api/jobs/", json=count_spec(steps=5),
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)

        # Then the API accepts it, says it will be dispatched later, and the job is kept as queued
        assert resp.status_code == 202, resp.text
        assert "broker is unreachable" in resp.json()["message"]
        job = Job.objects.get(pk=resp.json()["job"]["id"])
        assert job.status == "queued" and not job.dispatched
        time.sleep(2)  # a few maintenance rounds pass with the broker down
        job.refresh_from_db()
        assert job.status == "queued" and not job.dispatched

        # And when the broker is back, a worker dispatches and runs it
        private_redis.start()
        done = wait_job(job.pk, {"succeeded", "failed", "lost", "cancelled"}, timeout=60)
        assert done.status == "succeeded", done.error
        assert done.dispatched and done.run.metric_points.filter(key="loss").count() == 5
    finally:
        worker.stop()
        web.stop()
