import math

import torch

from runner.engine.common import load_checkpoint
from runner.engine.jobs import run_job
from runner.engine.reporter import RecordingReporter
from runner.engine.train import lr_at
from tests.engine.conftest import train_spec


def epoch_rows(reporter):
    return [m for _, m in reporter.metrics if "val_acc" in m]


def test_training_reports_metrics_and_checkpoints_every_epoch(tmp_path):
    reporter = RecordingReporter()
    summary = run_job(train_spec(epochs=2, log_every=1), tmp_path, reporter)
    step_keys = set().union(*(m.keys() for _, m in reporter.metrics))
    assert {"loss", "acc", "lr", "samples_per_s", "val_acc", "train_loss", "test_acc"} <= step_keys
    assert summary["epochs"] == 2 and summary["steps"] == 8 and reporter.progress[-1] == (8, 8)
    assert [a[0] for a in reporter.artifacts] == ["checkpoints/epoch_0001.pt", "checkpoints/epoch_0002.pt"]
    ckpt = load_checkpoint(tmp_path / "checkpoints/epoch_0002.pt")  # weights_only=True inside
    assert ckpt["train_state"]["epoch"] == 2 and ckpt["arch"]["model"] == "cnn"
    losses = [m["loss"] for _, m in reporter.metrics if "loss" in m]
    assert losses[-1] < losses[0]


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    # Given a 3-epoch run, and the same job resumed from the checkpoint that run wrote after epoch 1
    full = RecordingReporter()
    run_job(train_spec(epochs=3), tmp_path / "full", full)
    spec = train_spec(epochs=3) | {"checkpoint": str(tmp_path / "full/checkpoints/epoch_0001.pt"), "resume": True}
    resumed = RecordingReporter()
    run_job(spec, tmp_path / "resumed", resumed)
    # Then the resumed epochs 2 and 3 report the same numbers and end with the same weights
    assert len(epoch_rows(resumed)) == 2
    for key in ("train_loss", "val_acc", "val_loss"):
        assert [m[key] for m in epoch_rows(resumed)] == [m[key] for m in epoch_rows(full)[1:]]
    assert [s for s, _ in resumed.metrics][0] == [s for s, _ in full.metrics if s > 4][0]
    a = load_checkpoint(tmp_path / "full/checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "resumed/checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_learning_rate_schedules():
    hp = {"lr": 0.1, "warmup_epochs": 1, "schedule": "cosine", "gamma": 0.1, "step_size": 2}
    assert lr_at(hp, 0, 10, 5) == 0.1 / 10 and lr_at(hp, 9, 10, 5) == 0.1
    assert math.isclose(lr_at(hp, 10, 10, 5), 0.1) and lr_at(hp, 49, 10, 5) < 1e-3
    step = hp | {"schedule": "step", "warmup_epochs": 0}
    assert [round(lr_at(step, e * 10, 10, 6), 6) for e in range(6)] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]


def test_cancel_stops_between_steps(tmp_path):
    reporter = RecordingReporter(stop_after_steps=2)
    summary = run_job(train_spec(epochs=5), tmp_path, reporter)
    assert summary["cancelled"] is True and summary["steps"] == 2 and summary["epochs"] == 0
