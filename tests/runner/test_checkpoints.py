"""Checkpoint references ("<run id>/<path>") become real files under the artifact root before an engine loads them."""
from __future__ import annotations

import os

import pytest

from experiments.models import Artifact
from runner import services
from runner.execution import engine_spec, execute_job
from runner.models import JobLogLine
from tests.runner.support import count_spec

pytestmark = pytest.mark.django_db


@pytest.fixture
def artifact_root(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()
    return settings.ARTIFACT_ROOT


def test_a_reference_resolves_to_the_file_under_the_artifact_root(artifact_root):
    target = artifact_root / "7" / "checkpoints" / "epoch_0001.pt"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"weights")
    assert services.checkpoint_resolve("7/checkpoints/epoch_0001.pt") == target.resolve()


@pytest.mark.parametrize("ref", ["../7/x.pt", "7/../8/x.pt", "7//etc/passwd", "/etc/passwd", "7/", "x/a.pt",
                                 "7/a/../../8/x.pt", "", "7/missing.pt"])
def test_traversal_malformed_and_missing_references_are_refused(artifact_root, ref):
    (artifact_root / "8").mkdir()
    (artifact_root / "8" / "x.pt").write_bytes(b"someone else's")
    with pytest.raises(services.CheckpointRefError):
        services.checkpoint_resolve(ref)


def test_a_symbolic_link_out_of_the_run_directory_is_refused(artifact_root, tmp_path):
    outside = tmp_path / "secret.pt"
    outside.write_bytes(b"not an artifact")
    (artifact_root / "7").mkdir()
    os.symlink(outside, artifact_root / "7" / "link.pt")
    with pytest.raises(services.CheckpointRefError, match="outside"):
        services.checkpoint_resolve("7/link.pt")


def test_the_engine_gets_the_absolute_path_and_the_job_keeps_the_reference(artifact_root, user):
    parent = services.job_submit(owner=user, spec=count_spec()).run
    path = artifact_root / str(parent.pk) / "checkpoints" / "step_5.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"checkpoint 5")
    Artifact.objects.create(run=parent, path="checkpoints/step_5.pt", kind="checkpoint")
    job = services.job_submit(owner=user, spec={**count_spec(), "parent_run": parent.pk})

    assert job.spec["checkpoint"] == f"{parent.pk}/checkpoints/step_5.pt"
    assert engine_spec(job)["checkpoint"] == str(path.resolve())


def test_a_job_whose_checkpoint_file_is_gone_fails_naming_it_without_starting_the_engine(artifact_root, user):
    parent = services.job_submit(owner=user, spec=count_spec()).run
    Artifact.objects.create(run=parent, path="checkpoints/step_5.pt", kind="checkpoint")  # row, but no file
    job = services.job_submit(owner=user, spec={**count_spec(), "parent_run": parent.pk})

    assert execute_job(job_id=job.pk, hostname="here") == "failed"

    job.refresh_from_db()
    assert job.status == "failed" and "missing from the artifact store" in job.error
    assert f"{parent.pk}/checkpoints/step_5.pt" in job.error
    assert JobLogLine.objects.filter(job=job, text__contains="missing").exists()
    assert job.run.status == "failed"


def test_a_run_directory_that_is_itself_a_link_is_refused(artifact_root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.pt").write_bytes(b"not this run's")
    os.symlink(elsewhere, artifact_root / "9")
    with pytest.raises(services.CheckpointRefError, match="outside"):
        services.checkpoint_resolve("9/x.pt")
