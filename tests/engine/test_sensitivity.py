"""Pruning sensitivity: each layer pruned alone at each ratio, written as the grid the run page draws."""
from __future__ import annotations

import json

from runner.engine.jobs import run_job
from runner.engine.reporter import RecordingReporter

LAYERS = ["features.0.0", "features.1.0", "features.3.0"]


def sensitivity_spec(checkpoint, **hyperparameters) -> dict:
    return {"kind": "sensitivity", "dataset": "digits", "device": "cpu", "checkpoint": str(checkpoint),
            "hyperparameters": hyperparameters}


def test_sensitivity_scan_writes_the_heatmap_grid(trained_cnn, tmp_path):
    # Given a scan of each conv layer alone at three ratios
    reporter = RecordingReporter()
    summary = run_job(sensitivity_spec(trained_cnn, ratios=[0.25, 0.5, 0.9]), tmp_path, reporter)
    # Then sensitivity.json holds a layers x ratios accuracy matrix in the form the run page draws
    grid = json.loads((tmp_path / "sensitivity.json").read_text())
    assert grid["layers"] == LAYERS and grid["ratios"] == [0.25, 0.5, 0.9]
    assert len(grid["acc"]) == 3 and all(len(row) == 3 for row in grid["acc"])
    assert all(0 <= a <= 1 for row in grid["acc"] for a in row)
    assert grid["baseline"] == summary["baseline_acc"]
    # and pruning 90% of a layer hurts more, on average, than pruning 25%
    assert sum(row[2] for row in grid["acc"]) < sum(row[0] for row in grid["acc"])
    assert ("sensitivity.json", "sensitivity") in [(a[0], a[1]) for a in reporter.artifacts]
    assert reporter.progress[-1] == (9, 9)


def test_cancelled_scan_writes_the_rows_it_finished(trained_cnn, tmp_path):
    reporter = RecordingReporter(stop_after_steps=4)  # stops after the first cell of the second layer
    summary = run_job(sensitivity_spec(trained_cnn, ratios=[0.25, 0.5, 0.9]), tmp_path, reporter)
    grid = json.loads((tmp_path / "sensitivity.json").read_text())
    assert summary["cancelled"] is True
    # the grid stays rectangular (what the page accepts), with the cells never reached left empty
    assert grid["layers"] == LAYERS[:2] and [len(row) for row in grid["acc"]] == [3, 3]
    assert grid["acc"][1][0] is not None and grid["acc"][1][1:] == [None, None]
