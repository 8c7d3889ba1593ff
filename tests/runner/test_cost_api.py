"""POST /api/cost/estimate/, GET /api/cost/profiles/, GET /api/cost/runs/<id>/ and their schema."""
from __future__ import annotations

import pytest
from torch import nn

from experiments.services import project_get_or_create, run_create
from runner import costs
from runner.engine.cost import estimate
from runner.engine.models import MODELS, build_model

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def artifact_root(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"


def test_estimate_a_registry_model_without_a_job(api_client):
    resp = api_client.post("/api/cost/estimate/", {"model": "resnet20", "dataset": "cifar10", "batch_size": 2,
                                                   "bits": {"default": [4, 8], "layers": {"fc": [8, 8]}},
                                                   "profile": "jetson-orin"}, format="json")
    assert resp.status_code == 200, resp.content
    report = resp.json()
    # the same model built here and estimated directly gives the same MACs
    direct = estimate(build_model("resnet20", (3, 32, 32), 10), (3, 32, 32), batch_size=2)
    assert report["totals"]["macs"] == direct["totals"]["macs"] > 0
    assert report["profile"]["name"] == "jetson-orin"
    fc = [r for r in report["layers"] if r["name"] == "fc"]
    assert fc and (fc[0]["w_bits"], fc[0]["a_bits"]) == (8, 8)
    others = [r for r in report["layers"] if r["macs"] and r["name"] != "fc"]
    assert all((r["w_bits"], r["a_bits"]) == (4, 8) for r in others)
    assert report["totals"]["bops"] == sum(r["bops"] for r in report["layers"])


def test_estimate_with_an_explicit_input_shape(api_client):
    resp = api_client.post("/api/cost/estimate/", {"model": "mlp", "input_shape": [1, 8, 8], "num_classes": 3},
                           format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["input_shapes"] == [[1, 1, 8, 8]]


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "resnet99", "dataset": "digits"}, "model"),
    ({"model": "mlp", "dataset": "imagenet"}, "dataset"),
    ({"model": "mlp"}, "dataset"),
    ({"model": "mlp", "dataset": "digits", "profile": "tpu-v9"}, "profile"),
    ({"model": "mlp", "dataset": "digits", "bits": {"default": [0, 8]}}, "bits.default"),
    ({"model": "mlp", "dataset": "digits", "bits": {"layers": {"fc": [4]}}}, "bits.layers.fc"),
    ({"model": "mlp", "input_shape": [0, 3]}, "input_shape"),
    ({"model": "mlp", "dataset": "digits", "batch_size": 0}, "batch_size"),
    ({"model": "mlp", "dataset": "digits", "model_options": {"colour": 1}}, "model_options"),
])
def test_bad_input_is_a_400_naming_the_field(api_client, body, field):
    resp = api_client.post("/api/cost/estimate/", body, format="json")
    assert resp.status_code == 400, resp.content
    assert field in resp.json()["errors"]


def test_profiles_list_has_the_builtins_with_ridge_points(api_client):
    resp = api_client.get("/api/cost/profiles/")
    assert resp.status_code == 200
    by_name = {p["name"]: p for p in resp.json()}
    assert {"a100", "jetson-orin", "fpga-int", "desktop-cpu"} <= set(by_name)
    a100 = by_name["a100"]
    assert a100["ridge_points"]["fp32"] == pytest.approx(19.5e12 / 1.555e12)


def test_run_report_endpoint_is_owner_only(api_client, user, other_user):
    project = project_get_or_create(owner=user, name="p")
    mine = run_create(owner=user, project=project, name="mine")
    theirs = run_create(owner=other_user, project=project_get_or_create(owner=other_user, name="p"), name="t")
    costs.cost_report_attach(run=mine, report=estimate(nn.Sequential(nn.Linear(4, 2)), (4,)), label="m")
    resp = api_client.get(f"/api/cost/runs/{mine.pk}/")
    assert resp.status_code == 200
    assert resp.json()["report"]["totals"]["macs"] == 8
    assert [(h["label"], h["macs"]) for h in resp.json()["history"]] == [("m", 8)]
    assert resp.json()["profiles"]
    assert api_client.get(f"/api/cost/runs/{theirs.pk}/").status_code == 404


def test_schema_documents_the_cost_endpoints(api_client):
    resp = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    paths = resp.json()["paths"] if resp["Content-Type"].startswith("application/json") else resp.content.decode()
    for path in ("/api/cost/estimate/", "/api/cost/profiles/", "/api/cost/runs/{run_id}/"):
        assert path in paths


def test_every_registry_model_is_estimable_through_the_api(api_client):
    shapes = {2: [3, 64], 3: [3, 32, 32]}
    for name, (_, ranks, _) in MODELS.items():
        shape = shapes[(ranks or (3,))[0]]
        resp = api_client.post("/api/cost/estimate/", {"model": name, "input_shape": shape}, format="json")
        assert resp.status_code == 200, (name, resp.content)
        assert resp.json()["totals"]["macs"] > 0


def test_estimate_a_checkpoint_of_ones_own_run_with_its_sparsity(api_client, user, other_user, settings):
    import torch

    from experiments.models import Artifact
    from runner.engine.common import save_checkpoint
    from runner.engine.models import describe_channels

    model = build_model("cnn", (1, 8, 8), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        convs[-1].weight.view(-1)[: convs[-1].weight.numel() // 2] = 0  # half of the last conv pruned
    arch = {"model": "cnn", "input_shape": [1, 8, 8], "num_classes": 10, "model_options": {},
            "channels": describe_channels(model)}
    runs = {}
    for owner in (user, other_user):
        run = run_create(owner=owner, project=project_get_or_create(owner=owner, name="p"), name="trained")
        save_checkpoint(settings.ARTIFACT_ROOT / str(run.pk) / "checkpoint.pt", model=model, arch=arch)
        Artifact.objects.create(run=run, path="checkpoint.pt", kind="checkpoint")
        runs[owner.pk] = run
    resp = api_client.post("/api/cost/estimate/", {"checkpoint": f"{runs[user.pk].pk}/checkpoint.pt",
                                                   "bits": {"default": [8, 8]}}, format="json")
    assert resp.status_code == 200, resp.content
    report = resp.json()
    assert report["totals"]["macs"] == estimate(model, (1, 8, 8))["totals"]["macs"]
    pruned = [r for r in report["layers"] if r["sparsity"] > 0]
    assert len(pruned) == 1 and abs(pruned[0]["sparsity"] - 0.5) < 0.01
    assert pruned[0]["effective_macs"] < pruned[0]["macs"]
    # someone else's checkpoint, or a path outside the run, is refused naming the field
    for ref in (f"{runs[other_user.pk].pk}/checkpoint.pt", f"{runs[user.pk].pk}/../x.pt"):
        resp = api_client.post("/api/cost/estimate/", {"checkpoint": ref}, format="json")
        assert resp.status_code == 400 and "checkpoint" in resp.json()["errors"]


def test_estimate_a_run_attaches_the_report(api_client, user):
    run = run_create(owner=user, project=project_get_or_create(owner=user, name="p"), name="logged",
                     config={"model": "cnn", "dataset": "digits"})
    resp = api_client.post(f"/api/cost/runs/{run.pk}/", {"profile": "fpga-int", "bits": {"default": [4, 4]}},
                           format="json")
    assert resp.status_code == 201, resp.content
    assert resp.json()["profile"]["name"] == "fpga-int" and resp.json()["bits"]["default"] == [4, 4]
    history = api_client.get(f"/api/cost/runs/{run.pk}/").json()["history"]
    assert [h["label"] for h in history] == ["estimate-fpga-int"]
    bare = run_create(owner=user, project=run.project, name="bare")
    resp = api_client.post(f"/api/cost/runs/{bare.pk}/", {}, format="json")
    assert resp.status_code == 400 and "run" in resp.json()["errors"]
