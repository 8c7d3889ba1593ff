"""Queue latency: a job submitted through the REST API until it is running on an idle, real Celery worker (one
process, prefork, as ``./lab worker`` starts it). Goal < 1 s. Baseline: a bare Celery task round trip (the
``labbook.health`` task: send, run, result back through Redis) on the same worker.

Latency = the Job row's ``started_at`` (stamped by the worker when it takes the job) - the moment the client sent
the POST; one machine, one clock. Each job is a cost estimate of a small MLP (real engine work, a second or so), and
the next job is submitted only after the previous one finished, so the worker is idle every time.
"""
from __future__ import annotations

import statistics
import time

from benchmarks.common import Context, Section, at_most, percentile, progress, wait_until

NAME = "queue_latency"
TITLE = "Queue latency: submit -> running on an idle Celery worker vs a bare Celery round trip"
NEEDS_STACK = True
GOAL_S = 1.0
SPEC = {"kind": "estimate", "model": "mlp", "dataset": "digits", "device": "cpu", "project": "bench-queue"}
FINAL = {"succeeded", "failed", "cancelled", "lost"}


def run(ctx: Context) -> Section:
    from labbook.celery import app
    from runner.models import Job

    section = Section(NAME, TITLE)
    n = 3 if ctx.quick else 10
    stack = ctx.stack
    stack.worker  # noqa: B018 - start it (and wait for its ping) before timing anything
    http = stack.http()
    base = stack.server.url

    latencies, failures = [], []
    for _ in progress(range(n + 1), desc="jobs submit -> running", unit="job"):
        sent = time.time()
        resp = http.post(f"{base}/api/jobs/", json=SPEC, timeout=30)
        resp.raise_for_status()
        job_id = resp.json()["job"]["id"]
        job = wait_until(lambda job_id=job_id: Job.objects.filter(pk=job_id, started_at__isnull=False).first(), timeout=60,
                         interval=0.01, message=f"job {job_id} to start")
        latencies.append(job.started_at.timestamp() - sent)
        done = wait_until(lambda job_id=job_id: Job.objects.filter(pk=job_id, status__in=FINAL).first(), timeout=120,
                          interval=0.05, message=f"job {job_id} to finish")
        if done.status != "succeeded":
            failures.append(f"job {job_id}: {done.status}: {done.error[-300:]}")
    latencies = latencies[1:]  # the first job warms the worker's imports (torch, the engine)

    round_trips = []
    for _ in range(n + 1):
        t = time.perf_counter()
        app.send_task("labbook.health", queue="cpu").get(timeout=30)
        round_trips.append(time.perf_counter() - t)
    round_trips = round_trips[1:]

    med = statistics.median(latencies)
    section.add("submit -> running, median", med, "s", statistics.median(round_trips),
                "bare Celery task round trip (labbook.health), median")
    section.add("submit -> running, max", max(latencies), "s", max(round_trips), "bare Celery round trip, max",
                goal=f"< {GOAL_S:g} s", passed=at_most(max(latencies), GOAL_S),
                note=f"{n} jobs, p95 {percentile(latencies, 95):.3f} s")
    if failures:
        section.notes.append("jobs that did not succeed: " + "; ".join(failures))
    section.details = {"jobs": n, "latencies_s": latencies, "round_trips_s": round_trips, "spec": SPEC}
    section.notes.append("Submit through POST /api/jobs/ (validation, Run and Job rows, dispatch on commit), then the "
                         "worker takes the message and marks the Job running. The goal is checked on the worst job.")
    return section
