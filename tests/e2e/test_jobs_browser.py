"""Headless Chromium against the real ASGI server, with a real worker running real jobs: the run page's chart grows
while its job runs, the jobs page follows the queue and cancels, the job page follows the log."""
from __future__ import annotations

import pytest

from experiments.models import MetricPoint
from runner import services
from runner.models import Job
from tests.conftest import wait_until
from tests.runner.support import _job_modules, count_spec, job_server, start_worker, wait_job  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def job_worker(transactional_db, tmp_path):
    proc = start_worker(tmp_path)
    yield proc
    proc.stop()


def _points(page, key: str) -> int:
    value = page.get_attribute(f".chart[data-key='{key}']", "data-points")
    return int(value or 0)


def _errors(page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_run_page_chart_grows_while_the_job_runs_and_the_status_turns_succeeded(user, job_worker, job_server,  # noqa: F811
                                                                                page_factory):
    # Given a job that is running
    job = services.job_submit(owner=user, spec=count_spec(steps=150, interval_ms=80))
    wait_until(lambda: Job.objects.get(pk=job.pk).progress_step >= 3, timeout=30, message="the job to make progress")

    # When its run page is opened
    page = page_factory(job_server, user)
    errors = _errors(page)
    page.goto(f"/runs/{job.run_id}/")
    page.wait_for_selector(".chart[data-key='loss'] canvas")

    # Then the chart gains points as the job produces them
    first = _points(page, "loss")
    assert first >= 1
    # (polled from here: the page's Content-Security-Policy forbids the eval that wait_for_function needs)
    second = wait_until(lambda: _points(page, "loss") > first and _points(page, "loss"), timeout=20,
                        message="the chart to gain points")
    wait_until(lambda: _points(page, "loss") > second, timeout=20, message="the chart to gain more points")
    # and the status changes to succeeded, on the live panel and on the run's badge, with every point drawn
    page.wait_for_selector("[data-live='status']:text-is('succeeded')", timeout=30000)
    page.wait_for_selector("#run-status:text-is('succeeded')")
    assert _points(page, "loss") == 150 == MetricPoint.objects.filter(run_id=job.run_id, key="loss").count()
    assert page.get_attribute("[data-live='bar']", "value") == "150"
    assert errors == []


def test_jobs_page_follows_the_queue_and_cancels_and_the_job_page_follows_the_log(user, job_worker, job_server,  # noqa: F811
                                                                                  page_factory):
    job = services.job_submit(owner=user, spec=count_spec(steps=100000, interval_ms=20, print_every=10))
    row = f"tr[data-job='{job.pk}']"

    # The queue: the row's state, progress, worker and elapsed time update without a reload
    page = page_factory(job_server, user)
    errors = _errors(page)
    page.goto("/jobs/")
    page.wait_for_selector(f"{row} [data-col='status']:text-is('running')", timeout=30000)
    page.wait_for_selector(f"{row} [data-col='worker']:text-is('{job_worker.hostname}')")
    seen = int(page.get_attribute(f"{row} progress", "value"))
    wait_until(lambda: int(page.get_attribute(f"{row} progress", "value")) > seen, timeout=20,
               message="the progress bar to move")
    assert page.inner_text(f"{row} [data-col='elapsed']") != "—"

    # The job page follows the log live: captured stdout lines keep arriving
    detail = page_factory(job_server, user)
    detail_errors = _errors(detail)
    detail.goto(f"/jobs/{job.pk}/")
    detail.wait_for_selector("[data-live='log'] .log-stdout")
    shown = detail.locator("[data-live='log'] .log-stdout").count()
    wait_until(lambda: detail.locator("[data-live='log'] .log-stdout").count() > shown + 2, timeout=20,
               message="more log lines")
    assert "counting to 100000" in detail.inner_text("[data-live='log']")

    # Cancel from the queue: the job stops within seconds and the row says so
    page.click(f"{row} button[data-cancel='{job.pk}']")
    page.wait_for_selector(f"{row} [data-col='status']:text-is('cancelled')", timeout=20000)
    assert page.locator(f"{row} button[data-cancel]").count() == 0
    assert wait_job(job.pk, {"cancelled"}).summary.get("stopped") is True
    detail.wait_for_selector("[data-live='status']:text-is('cancelled')")
    assert errors == [] and detail_errors == []
