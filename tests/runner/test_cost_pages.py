"""The /cost/ estimate page, /cost/profiles/, the run-page panel and the estimate_cost command."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.template.loader import render_to_string

from experiments.services import project_get_or_create, run_create
from runner.models import DeviceProfile

pytestmark = pytest.mark.django_db


def test_estimate_page_shows_the_form(auth_client):
    resp = auth_client.get("/cost/")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'name="model"' in html and "resnet20" in html and "jetson-orin" in html
    assert 'id="cost-report"' not in html


def test_estimate_page_renders_the_table_and_chart_data(auth_client):
    resp = auth_client.get("/cost/", {"model": "cnn", "dataset": "digits", "w_bits": 4, "a_bits": 8,
                                      "layer_bits": "head*: 8,8", "profile": "fpga-int", "batch_size": 2})
    assert resp.status_code == 200
    report = resp.context["report"]
    html = resp.content.decode()
    assert 'id="cost-report"' in html and 'id="cost-table"' in html
    assert report["profile"]["name"] == "fpga-int" and report["batch_size"] == 2
    for layer in report["layers"]:
        assert f'data-layer="{layer["name"]}"' in html
    assert json.loads(html.split('id="cost-report" type="application/json">')[1].split("</script>")[0])[
        "totals"]["macs"] == report["totals"]["macs"]


def test_estimate_page_reports_bad_input_on_the_field(auth_client):
    resp = auth_client.get("/cost/", {"model": "cnn", "input_shape": "3,x", "w_bits": 8, "a_bits": 8,
                                      "profile": "a100", "batch_size": 1})
    assert resp.status_code == 400
    assert 'data-error-for="input_shape"' in resp.content.decode()
    resp = auth_client.get("/cost/", {"model": "cnn", "input_shape": "1,8", "w_bits": 8, "a_bits": 8,
                                      "profile": "a100", "batch_size": 1})  # cnn needs (C, H, W)
    assert resp.status_code == 400 and 'data-error-for="input_shape"' in resp.content.decode()


def test_profiles_page_lists_profiles_and_the_energy_table(auth_client):
    resp = auth_client.get("/cost/profiles/")
    html = resp.content.decode()
    assert resp.status_code == 200
    for name in ("a100", "jetson-orin", "fpga-int", "desktop-cpu"):
        assert f'data-profile="{name}"' in html
    assert "Horowitz" in html and "640" in html


def test_run_panel_renders_for_a_run(user):
    run = run_create(owner=user, project=project_get_or_create(owner=user, name="p"), name="r")
    html = render_to_string("runner/_cost_panel.html", {"run": run})
    assert f'data-run-id="{run.pk}"' in html and f"/api/cost/runs/{run.pk}/" in html
    assert "js/runner/cost_panel.js" in html


def test_command_prints_the_per_layer_table():
    out = StringIO()
    call_command("estimate_cost", "cnn", "--dataset", "digits", "--bits", "8,8", "--profile", "jetson-orin",
                 stdout=out)
    text = out.getvalue()
    assert text.splitlines()[0].split()[:5] == ["layer", "type", "output", "params", "MACs"]
    assert "TOTAL" in text and "jetson-orin" in text and "8/8" in text


def test_command_json_and_layer_bits():
    out = StringIO()
    call_command("estimate_cost", "mlp", "--input-shape", "1,8,8", "--layer-bits", "*=4,4", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert all((r["w_bits"], r["a_bits"]) == (4, 4) for r in report["layers"] if r["macs"])


def test_command_errors_name_the_problem():
    with pytest.raises(CommandError, match="model"):
        call_command("estimate_cost", "resnet99", stdout=StringIO())
    with pytest.raises(CommandError, match="--bits"):
        call_command("estimate_cost", "mlp", "--bits", "8", stdout=StringIO())


def test_command_calibrate_saves_a_measured_profile():
    out = StringIO()
    call_command("estimate_cost", "--calibrate", "--device", "cpu", "--save-as", "bench", stdout=out)
    row = DeviceProfile.objects.get(name="bench")
    assert row.measured and row.peak_ops["fp32"] > 0 and row.bandwidth > 0
    assert "saved profile 'bench'" in out.getvalue()


def test_estimate_page_estimates_a_checkpoint_of_ones_runs(auth_client, user, settings, tmp_path):
    from experiments.models import Artifact
    from runner.engine.common import save_checkpoint
    from runner.engine.models import build_model, describe_channels

    settings.ARTIFACT_ROOT = tmp_path
    run = run_create(owner=user, project=project_get_or_create(owner=user, name="p"), name="trained")
    model = build_model("mlp", (1, 8, 8), 10)
    save_checkpoint(tmp_path / str(run.pk) / "checkpoint.pt", model=model,
                    arch={"model": "mlp", "input_shape": [1, 8, 8], "num_classes": 10, "model_options": {},
                          "channels": describe_channels(model)})
    Artifact.objects.create(run=run, path="checkpoint.pt", kind="checkpoint")
    page = auth_client.get("/cost/").content.decode()
    assert f'value="{run.pk}/checkpoint.pt"' in page
    resp = auth_client.get("/cost/", {"checkpoint": f"{run.pk}/checkpoint.pt", "w_bits": 8, "a_bits": 8,
                                      "profile": "a100", "batch_size": 1})
    assert resp.status_code == 200
    assert resp.context["report"]["spec"]["checkpoint"] == f"{run.pk}/checkpoint.pt"
    assert resp.context["report"]["totals"]["params"] == sum(p.numel() for p in model.parameters())
