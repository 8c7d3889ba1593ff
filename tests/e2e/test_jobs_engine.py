"""The real engine through a real worker: a data-parallel train job (2 CPU processes, gloo), a quantize job that
loads its checkpoint by reference, and a calibration job whose profile becomes a measured DeviceProfile."""
from __future__ import annotations

import pytest

from experiments.models import Artifact, MetricPoint
from runner import services
from runner.models import DeviceProfile, JobLogLine
from tests.runner.support import _job_modules, start_worker, wait_job  # noqa: F401 - autouse fixture

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DDP_TRAIN = {"kind": "train", "model": "mlp", "dataset": "digits", "device": "cpu", "processes": 2, "seed": 1,
             "project": "ddp", "model_options": {"hidden": 32},
             "hyperparameters": {"epochs": 1, "batch_size": 64, "lr": 0.1, "train_subset": 384, "log_every": 1}}


@pytest.fixture
def job_worker(transactional_db, tmp_path):
    proc = start_worker(tmp_path)
    yield proc
    proc.stop()


def test_two_process_train_then_quantize_from_its_checkpoint(user, job_worker):
    # Given a train job asking for 2 processes on the CPU
    train = services.job_submit(owner=user, spec=DDP_TRAIN)

    # Then both ranks train (gloo) and rank 0's metrics, checkpoint and cost report are stored
    done = wait_job(train.pk, {"succeeded", "failed", "cancelled", "lost"}, timeout=150)
    assert done.status == "succeeded", done.error
    assert done.processes == 2 and done.summary["processes"] == 2 and done.summary["epochs"] == 1
    steps = list(MetricPoint.objects.filter(run=done.run, key="loss").order_by("step").values_list("step", flat=True))
    assert steps == [1, 2, 3, 4, 5, 6]  # 384 samples / batch 64, logged every step by rank 0 only
    checkpoint = Artifact.objects.get(run=done.run, kind="checkpoint")
    assert checkpoint.path == "checkpoints/epoch_0001.pt" and checkpoint.size > 0
    # the epoch's cost report is filed at the training step it describes, beside the training metrics
    report = Artifact.objects.get(run=done.run, kind="cost-report")
    assert report.meta["step"] == checkpoint.meta["step"] == 6
    assert list(MetricPoint.objects.filter(run=done.run, key="cost/macs").values_list("step", flat=True)) == [6]

    # When a quantize job starts from that run (its newest checkpoint, by reference)
    quant = services.job_submit(owner=user, spec={
        "kind": "quantize", "parent_run": done.run_id, "device": "cpu", "project": "ddp",
        "hyperparameters": {"finetune_epochs": 0, "real_int8": False, "calib_batches": 1}})
    assert quant.spec["checkpoint"] == f"{done.run_id}/checkpoints/epoch_0001.pt"

    # Then the engine loads the file (weights only) and quantizes it
    qdone = wait_job(quant.pk, {"succeeded", "failed", "cancelled", "lost"}, timeout=120)
    assert qdone.status == "succeeded", qdone.error
    assert qdone.run.parent_id == done.run_id
    assert Artifact.objects.filter(run=qdone.run, kind="checkpoint", path="checkpoint.pt").exists()
    assert MetricPoint.objects.filter(run=qdone.run, key="cost/bops").exists()


def test_a_calibration_job_saves_the_workers_measured_profile(user, job_worker):
    job = services.job_submit(owner=user, spec={
        "kind": "calibrate", "device": "cpu", "project": "ops",
        "hyperparameters": {"dtypes": ["fp32"], "size": 64, "copy_mb": 1, "seconds": 0.05, "name": "worker-cpu"}})

    done = wait_job(job.pk, {"succeeded", "failed", "cancelled", "lost"}, timeout=90)

    assert done.status == "succeeded", done.error
    row = DeviceProfile.objects.get(name="worker-cpu")
    assert row.measured and row.kind == "cpu"
    assert row.peak_ops["fp32"] == done.summary["profile"]["peak_ops"]["fp32"] > 0
    assert row.bandwidth == done.summary["profile"]["bandwidth"] > 0
    assert JobLogLine.objects.filter(job=done, text__contains="saved the measured device profile 'worker-cpu'").exists()
    # and a later estimate job can name it: the submit resolves it from the database for the engine
    estimate = services.job_submit(owner=user, spec={"kind": "estimate", "model": "mlp", "dataset": "digits",
                                                     "hyperparameters": {"profile": "worker-cpu"}})
    assert estimate.spec["hyperparameters"]["profile"]["peak_ops"]["fp32"] == row.peak_ops["fp32"]
    assert estimate.request["hyperparameters"]["profile"] == "worker-cpu"  # what the user wrote, for cloning
    edone = wait_job(estimate.pk, {"succeeded", "failed", "cancelled", "lost"}, timeout=90)
    assert edone.status == "succeeded", edone.error
    assert Artifact.objects.get(run=edone.run, kind="cost-report").meta["profile"] == "worker-cpu"
