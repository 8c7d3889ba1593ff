import torch

from runner.engine.common import load_checkpoint
from runner.engine.jobs import run_job
from runner.engine.reporter import RecordingReporter


def test_two_cpu_processes_match_one(tmp_path):
    # Given the same MLP job (no batch norm, whose statistics are per process) on 1 and on 2 processes
    spec = {"kind": "train", "model": "mlp", "dataset": "digits", "device": "cpu", "seed": 1,
            "model_options": {"hidden": 32},
            "hyperparameters": {"epochs": 1, "batch_size": 64, "lr": 0.1, "train_subset": 384, "log_every": 1}}
    one, two = RecordingReporter(), RecordingReporter()
    run_job(spec, tmp_path / "one", one)
    summary = run_job(spec | {"processes": 2}, tmp_path / "two", two)
    # Then rank 0 reported the same loss trajectory and the weights agree
    assert summary["processes"] == 2
    loss1 = [m["loss"] for _, m in one.metrics if "loss" in m]
    loss2 = [m["loss"] for _, m in two.metrics if "loss" in m]
    assert len(loss1) == len(loss2) == 6
    assert max(abs(a - b) for a, b in zip(loss1, loss2, strict=True)) < 1e-5
    a = load_checkpoint(tmp_path / "one/checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "two/checkpoint.pt")["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert [x[0] for x in two.artifacts] == ["checkpoints/epoch_0001.pt"]
