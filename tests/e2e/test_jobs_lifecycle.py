"""End to end with a real Celery worker, Redis and PostgreSQL: a job's whole life."""
from __future__ import annotations

import os
import signal

import pytest

from experiments.models import MetricPoint
from runner import services, streams
from runner.models import Job, JobLogLine
from tests.conftest import wait_until
from tests.runner.support import _job_modules, count_spec, start_worker, wait_job  # noqa: F401 - autouse fixture

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def job_worker(transactional_db, tmp_path):
    proc = start_worker(tmp_path)
    yield proc
    proc.stop()


def test_submitted_job_runs_stores_metrics_and_succeeds(user, job_worker):
    # Given a worker, when a job is submitted
    job = services.job_submit(owner=user, spec=count_spec(steps=12, print_every=4))
    assert job.status == "queued" and Job.objects.get(pk=job.pk).dispatched

    # Then it runs on that worker, and finishes with every metric point stored
    running = wait_job(job.pk, {"running", "succeeded"})
    assert running.worker_hostname == job_worker.hostname
    done = wait_job(job.pk, {"succeeded", "failed"})
    assert done.status == "succeeded", done.error
    assert MetricPoint.objects.filter(run=done.run, key="loss").count() == 12
    assert done.progress_step == 12 and done.progress_total == 12
    assert done.summary["steps"] == 12
    done.run.refresh_from_db()
    assert done.run.status == "succeeded" and done.run.metric_summary["loss"]["count"] == 12
    texts = list(JobLogLine.objects.filter(job=done).values_list("text", flat=True))
    assert "counting to 12" in texts and "stdout line 8" in texts
    events = [event for _id, event, _data in streams.read_events(done.run_id)]
    assert {"status", "metrics", "progress", "log"} <= set(events)


def test_cancel_stops_a_running_job_within_seconds(user, job_worker):
    job = services.job_submit(owner=user, spec=count_spec(steps=100000, interval_ms=10))
    wait_until(lambda: Job.objects.get(pk=job.pk).progress_step > 5, message="job to make progress")

    services.job_cancel(job=job, user=user)

    done = wait_job(job.pk, {"cancelled", "failed", "succeeded"}, timeout=8)
    assert done.status == "cancelled"
    assert done.summary.get("stopped") is True  # stopped cooperatively between steps
    assert done.run.status == "cancelled"


def test_cancel_kills_an_engine_that_ignores_it(user, job_worker):
    job = services.job_submit(owner=user, spec={"kind": "test_stubborn", "project": "tests"})
    wait_until(lambda: Job.objects.get(pk=job.pk).progress_step > 2, message="job to make progress")

    services.job_cancel(job=job, user=user)

    done = wait_job(job.pk, {"cancelled", "failed"}, timeout=15)
    assert done.status == "cancelled"
    log = "\n".join(JobLogLine.objects.filter(job=done).values_list("text", flat=True))
    assert "SIGKILL" in log


def test_timeout_is_enforced(user, job_worker):
    job = services.job_submit(owner=user, spec={**count_spec(steps=100000, interval_ms=10), "timeout": 2})
    done = wait_job(job.pk, {"failed", "cancelled", "succeeded"}, timeout=15)
    assert done.status == "failed" and "time limit" in done.error


def test_engine_error_fails_the_job_with_its_message(user, job_worker):
    job = services.job_submit(owner=user, spec=count_spec(steps=10, fail_at=3))
    done = wait_job(job.pk, {"failed", "succeeded"})
    assert done.status == "failed" and "deliberate failure at step 3" in done.error
    assert MetricPoint.objects.filter(run=done.run, key="loss").count() == 4


def test_killed_worker_makes_the_job_lost_and_it_resumes_from_its_checkpoint(user, tmp_path):
    # Given a worker on the cpu queue running a checkpointing job, and another worker (gpu queue) that reaps
    reaper = start_worker(tmp_path, queues="gpu")
    victim = start_worker(tmp_path, queues="cpu")
    successor = None
    try:
        job = services.job_submit(owner=user, spec=count_spec(steps=600, interval_ms=10, checkpoint_every=20))
        wait_until(lambda: job.run.artifacts.filter(kind="checkpoint").exists(), message="a checkpoint")

        # When the worker's whole process group is killed with SIGKILL (as if its machine died)
        os.killpg(victim.popen.pid, signal.SIGKILL)
        victim.popen.wait(timeout=10)

        # Then the other worker marks the job lost within the heartbeat timeout
        lost = wait_job(job.pk, {"lost", "succeeded", "failed"}, timeout=20)
        assert lost.status == "lost" and "heartbeat" in lost.error
        assert lost.run.status == "lost"

        # And it can be resumed from its last checkpoint as a new job
        checkpoint = lost.run.artifacts.filter(kind="checkpoint").order_by("-created_at").first()
        resumed = services.job_resume(job=lost, user=user)
        assert resumed.spec["checkpoint"] == f"{lost.run_id}/{checkpoint.path}"
        assert resumed.run.parent_id == lost.run_id and resumed.retry_of_id == lost.pk

        # which a new cpu worker runs to the end, starting from the checkpoint's file (the worker hands the engine
        # the file's path under the artifact root; the test kind reads the step from the file's content)
        successor = start_worker(tmp_path, queues="cpu", purge=False)
        done = wait_job(resumed.pk, {"succeeded", "failed", "lost"}, timeout=60)
        assert done.status == "succeeded", done.error
        start = int(checkpoint.path.rsplit("_", 1)[-1].removesuffix(".pt"))
        texts = list(JobLogLine.objects.filter(job=done).values_list("text", flat=True))
        assert any(t.startswith("resuming from /") and t.endswith(f"{checkpoint.path} at step {start}") for t in texts)
        steps = sorted(MetricPoint.objects.filter(run=done.run, key="loss").values_list("step", flat=True))
        assert steps == list(range(start, 600))
    finally:
        victim.stop(sig_kill=True)
        reaper.stop()
        if successor is not None:
            successor.stop()
