"""Device profiles in the database and cost reports attached to runs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from torch import nn

from experiments.models import Artifact, MetricPoint
from experiments.services import project_get_or_create, run_create
from runner import costs
from runner.engine.cost import estimate
from runner.engine.profiles import BUILTIN_PROFILES
from runner.models import DeviceProfile

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def artifact_root(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT


@pytest.fixture
def run(user):
    return run_create(owner=user, project=project_get_or_create(owner=user, name="cost"), name="r")


def small_report(**kw):
    return estimate(nn.Sequential(nn.Linear(8, 4), nn.ReLU()), (8,), **kw)


def test_builtin_profiles_are_created_once_and_admin_edits_survive():
    costs.device_profiles_ensure_builtin()
    assert set(DeviceProfile.objects.values_list("name", flat=True)) == set(BUILTIN_PROFILES)
    DeviceProfile.objects.filter(name="a100").update(bandwidth=2.0e12)
    costs.device_profiles_ensure_builtin()
    assert DeviceProfile.objects.count() == len(BUILTIN_PROFILES)
    assert costs.device_profile_engine("a100")["bandwidth"] == 2.0e12


def test_unknown_profile_names_the_field():
    with pytest.raises(ValidationError) as exc:
        costs.device_profile_engine("tpu-v9")
    assert "profile" in exc.value.message_dict


def test_measured_profile_is_saved_and_usable():
    row = costs.device_profile_save_measured(profile={"name": "local", "label": "Measured: test", "kind": "cpu",
                                                      "peak_ops": {"fp32": 2e10, "int8": 0}, "bandwidth": 1e10,
                                                      "measured_on": "host"})
    assert row.measured and row.peak_ops == {"fp32": 2e10}
    report = small_report(profile=costs.device_profile_engine("local"))
    assert report["profile"]["name"] == "local"
    with pytest.raises(ValidationError):
        costs.device_profile_save_measured(profile={"peak_ops": {}, "bandwidth": 1})


def test_attach_writes_the_report_artifact_and_cost_metrics(run):
    report = small_report(default_bits=(8, 8))
    artifact = costs.cost_report_attach(run=run, report=report, label="after prune/step 1", step=3)
    assert artifact.kind == "cost-report" and artifact.path == "cost/after-prune-step-1.json"
    path = Path(settings.ARTIFACT_ROOT) / str(run.pk) / artifact.path
    assert json.loads(path.read_text())["totals"]["macs"] == 32
    assert artifact.size == path.stat().st_size
    points = {p.key: p.value for p in MetricPoint.objects.filter(run=run, step=3)}
    assert points["cost/macs"] == 32 and points["cost/bops"] == 32 * 64
    assert set(points) == {"cost/macs", "cost/params", "cost/bops", "cost/bytes", "cost/latency_s", "cost/energy_j"}
    # attaching again is idempotent
    costs.cost_report_attach(run=run, report=report, label="after prune/step 1", step=3)
    assert Artifact.objects.filter(run=run).count() == 1
    assert MetricPoint.objects.filter(run=run, key="cost/macs").count() == 1


def test_latest_report_is_the_newest_artifact(run):
    costs.cost_report_attach(run=run, report=small_report(), label="dense")
    costs.cost_report_attach(run=run, report=small_report(default_bits=(4, 4)), label="w4a4")
    assert costs.cost_report_latest(run=run)["bits"]["default"] == [4, 4]


def test_reports_outside_the_run_directory_are_never_read(run, user):
    Artifact.objects.create(run=run, path="../../etc/passwd", kind="cost-report")
    assert costs.cost_report_latest(run=run) is None


def test_sensitivity_grid_is_read_when_well_formed(run):
    base = Path(settings.ARTIFACT_ROOT) / str(run.pk)
    base.mkdir(parents=True, exist_ok=True)
    (base / "sensitivity.json").write_text(json.dumps({"layers": ["a", "b"], "ratios": [0.25, 0.5],
                                                       "acc": [[0.9, 0.8], [0.91, 0.5]]}))
    Artifact.objects.create(run=run, path="sensitivity.json", kind="other")
    assert costs.sensitivity_get(run=run)["acc"][1][1] == 0.5
    (base / "sensitivity.json").write_text(json.dumps({"layers": ["a"], "ratios": [0.5], "acc": [[1], [2]]}))
    assert costs.sensitivity_get(run=run) is None


def test_the_engines_sensitivity_scan_is_the_grid_the_run_page_draws(run, tmp_path):
    # Given a sensitivity job of the engine writing into the run's artifact directory
    from runner.engine.jobs import run_job
    from runner.engine.reporter import RecordingReporter

    train = {"kind": "train", "model": "cnn", "dataset": "digits", "device": "cpu", "model_options": {"width": 8},
             "hyperparameters": {"epochs": 1, "train_subset": 128}}
    run_job(train, tmp_path / "train", RecordingReporter())
    reporter = RecordingReporter()
    run_job({"kind": "sensitivity", "dataset": "digits", "device": "cpu", "checkpoint": str(
        tmp_path / "train/checkpoint.pt"), "hyperparameters": {"ratios": [0.25, 0.75]}},
        Path(settings.ARTIFACT_ROOT) / str(run.pk), reporter)
    for path, kind, meta in reporter.artifacts:
        Artifact.objects.create(run=run, path=path, kind=kind, meta=meta)
    # Then the run page's reader accepts it: one row per conv layer, one column per ratio, and the baseline
    grid = costs.sensitivity_get(run=run)
    assert grid["layers"] == ["features.0.0", "features.1.0", "features.3.0"] and grid["ratios"] == [0.25, 0.75]
    assert len(grid["acc"]) == 3 and all(len(row) == 2 for row in grid["acc"])
    assert 0 < grid["baseline"] <= 1


def test_job_specs_get_database_profiles_inlined():
    costs.device_profile_save_measured(profile={"name": "local", "peak_ops": {"fp32": 1e10}, "bandwidth": 5e9})
    spec = costs.cost_spec_resolve_profiles({"kind": "estimate", "model": "cnn",
                                             "hyperparameters": {"profile": "local", "profiles": ["a100"]}})
    assert spec["hyperparameters"]["profile"]["bandwidth"] == 5e9
    assert spec["hyperparameters"]["profiles"][0]["name"] == "a100"
    with pytest.raises(ValidationError) as exc:
        costs.cost_spec_resolve_profiles({"hyperparameters": {"profile": "nope"}})
    assert "hyperparameters.profile" in exc.value.message_dict


def test_reports_without_a_step_each_add_a_metric_point(run):
    costs.cost_report_attach(run=run, report=small_report(), label="dense")
    costs.cost_report_attach(run=run, report=small_report(default_bits=(4, 4)), label="w4a4")
    costs.cost_report_attach(run=run, report=small_report(), label="dense")  # again: keeps its step
    bops = list(MetricPoint.objects.filter(run=run, key="cost/bops").order_by("step").values_list("step", "value"))
    assert bops == [(0, 32 * 32 * 32), (1, 32 * 4 * 4)]
    run.refresh_from_db()
    assert run.metric_summary["cost/bops"]["last"] == 32 * 4 * 4
