"""The estimate and measure jobs, run with a RecordingReporter (no database)."""
from __future__ import annotations

import json

import pytest

from runner.engine.cost_jobs import estimate_job, measure_job
from runner.engine.jobs import SpecError
from runner.engine.reporter import RecordingReporter


def spec(**hyperparameters):
    return {"model": "cnn", "input_shape": [1, 8, 8], "num_classes": 10, "device": "cpu",
            "hyperparameters": hyperparameters}


def test_estimate_job_writes_a_report_and_streams_it(tmp_path):
    reporter = RecordingReporter()
    summary = estimate_job(spec(default_bits=[8, 8], layer_bits={"head*": [4, 8]}, profiles=["fpga-int"],
                                label="cnn w8"), tmp_path, reporter)
    report = json.loads((tmp_path / summary["report"]).read_text())
    assert summary["report"] == "cost/cnn-w8.json"
    assert reporter.artifacts == [("cost/cnn-w8.json", "cost-report", reporter.artifacts[0][2])]
    assert reporter.costs[0]["label"] == "cnn-w8" and reporter.costs[0]["totals"]["macs"] == report["totals"]["macs"]
    step, metrics = reporter.metrics[0]
    assert metrics["cost/macs"] == report["totals"]["macs"] > 0 and metrics["cost/bops"] == report["totals"]["bops"]
    assert "fpga-int" in report["by_profile"]
    assert any("cost/latency_s@fpga-int" in m for _, m in reporter.metrics)


def test_estimate_job_refuses_bad_options(tmp_path):
    with pytest.raises(SpecError) as exc:
        estimate_job(spec(default_bits=[8]), tmp_path, RecordingReporter())
    assert "hyperparameters.default_bits" in exc.value.errors


def test_measure_job_times_each_batch_size_beside_the_estimate(tmp_path):
    reporter = RecordingReporter()
    summary = measure_job(spec(batch_sizes=[1, 4], warmup=1, repeats=3), tmp_path, reporter)
    rows = summary["measured"]
    assert [r["batch_size"] for r in rows] == [1, 4]
    for r in rows:
        assert r["median_s"] > 0 and r["estimate_s"] > 0
        assert r["ratio"] == pytest.approx(r["median_s"] / r["estimate_s"])
    report = json.loads((tmp_path / summary["report"]).read_text())
    assert report["measured"]["rows"] == rows and report["profile"]["name"] == "desktop-cpu"
    assert {step for step, m in reporter.metrics if "cost/measured_latency_s" in m} == {1, 4}
