"""Engine fixtures: one small trained checkpoint shared by the pruning and quantization tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from runner.engine.jobs import run_job
from runner.engine.reporter import RecordingReporter


def train_spec(**hyperparameters) -> dict:
    hp = {"epochs": 1, "batch_size": 64, "lr": 0.05, "train_subset": 256} | hyperparameters
    return {"kind": "train", "model": "cnn", "dataset": "digits", "device": "cpu", "seed": 0,
            "model_options": {"width": 16}, "hyperparameters": hp}


@pytest.fixture(scope="session")
def trained_cnn(tmp_path_factory) -> Path:
    """A digits CNN (width 16) after 3 epochs on the full training split: accurate enough that pruning and
    quantization effects are visible."""
    out = tmp_path_factory.mktemp("trained")
    run_job(train_spec(epochs=3, train_subset=0), out, RecordingReporter())
    return out / "checkpoint.pt"
