"""End to end: an estimate job on a real Celery worker; its report reaches the run page's cost panel live."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.models import Artifact, MetricPoint
from runner.services import job_submit
from tests.conftest import start_asgi_server, wait_until
from tests.runner.support import FAST, start_worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_estimate_job_report_appears_on_the_run_page(user, tmp_path, page_factory, settings):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"  # before the server and the worker start: they inherit it
    server = start_asgi_server(tmp_path, **FAST)
    worker = None
    try:
        from labbook.celery import app

        app.control.purge()
        # given a queued estimate job and its run page open (no worker yet, so the panel starts empty)
        job = job_submit(owner=user, spec={"kind": "estimate", "model": "cnn", "dataset": "digits",
                                           "hyperparameters": {"default_bits": [8, 8], "profiles": ["fpga-int"]}})
        page = page_factory(server, user)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))  # uncaught script errors
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and "/cost/" in r.url
                else None)
        page.goto(f"/runs/{job.run_id}/", timeout=90000)
        page.wait_for_selector("[data-cost-panel][data-state='empty']", timeout=60000)
        # when a worker runs it
        worker = start_worker(tmp_path, purge=False)
        # then the report arrives through the live stream and is drawn
        page.wait_for_selector("[data-cost-panel][data-state='report'] svg .layer-dot", timeout=180000)
        assert errors == []
        artifact = wait_until(lambda: Artifact.objects.filter(run_id=job.run_id, kind="cost-report").first(),
                              timeout=30, message="the cost-report artifact")
        report = json.loads((Path(settings.ARTIFACT_ROOT) / str(job.run_id) / artifact.path).read_text())
        body = page.locator("[data-cost-body]")
        assert body.get_attribute("data-macs") == str(report["totals"]["macs"])
        assert report["bits"]["default"] == [8, 8] and "fpga-int" in report["by_profile"]
        macs = wait_until(lambda: MetricPoint.objects.filter(run_id=job.run_id, key="cost/macs").first(),
                          timeout=30, message="the cost/macs metric")
        assert macs.value == report["totals"]["macs"]
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
