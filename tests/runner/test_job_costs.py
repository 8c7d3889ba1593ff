"""Cost jobs at submit: device profiles resolved from the database, calibrate specs validated (no worker needed)."""
from __future__ import annotations

import pytest

from runner import costs
from runner.models import DeviceProfile, Job

pytestmark = pytest.mark.django_db


def test_an_estimate_naming_a_measured_profile_carries_the_databases_figures(api_client):
    costs.device_profile_save_measured(profile={"name": "lab-box", "peak_ops": {"fp32": 2e11}, "bandwidth": 3e10})
    resp = api_client.post("/api/jobs/", {"kind": "estimate", "model": "mlp", "dataset": "digits",
                                          "hyperparameters": {"profile": "lab-box", "profiles": ["a100"]}},
                           format="json")
    assert resp.status_code == 202, resp.json()
    job = Job.objects.get(pk=resp.json()["job"]["id"])
    hp = job.spec["hyperparameters"]
    assert hp["profile"]["name"] == "lab-box" and hp["profile"]["peak_ops"] == {"fp32": 2e11}
    assert hp["profiles"][0]["name"] == "a100" and hp["profiles"][0]["bandwidth"] > 0
    assert job.request["hyperparameters"]["profile"] == "lab-box"


@pytest.mark.parametrize(("hyper", "field"), [({"profile": "nope"}, "hyperparameters.profile"),
                                              ({"profiles": ["a100", "nope"]}, "hyperparameters.profiles")])
def test_an_unknown_profile_is_400_naming_the_field_and_the_allowed_names(api_client, hyper, field):
    resp = api_client.post("/api/jobs/", {"kind": "measure", "model": "mlp", "dataset": "digits",
                                          "hyperparameters": hyper}, format="json")
    assert resp.status_code == 400
    message = " ".join(resp.json()["errors"][field])
    assert "'nope'" in message and "a100" in message
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("spec", "field"),
    [({"model": "mlp"}, "model"), ({"processes": 2}, "processes"), ({"device": "tpu"}, "device"),
     ({"hyperparameters": {"dtypes": ["fp64"]}}, "hyperparameters.dtypes"),
     ({"hyperparameters": {"speed": 1}}, "hyperparameters.speed"),
     ({"hyperparameters": {"name": "a100"}}, "hyperparameters.name")],  # a builtin everyone shares
)
def test_a_bad_calibrate_spec_is_400_naming_the_field(api_client, spec, field):
    resp = api_client.post("/api/jobs/", {"kind": "calibrate", **spec}, format="json")
    assert resp.status_code == 400 and field in resp.json()["errors"], resp.json()


def test_calibrate_is_offered_and_accepted(api_client):
    assert "calibrate" in api_client.get("/api/jobs/options/").json()["kind"]
    resp = api_client.post("/api/jobs/", {"kind": "calibrate", "device": "cpu",
                                          "hyperparameters": {"name": "bench-box"}}, format="json")
    assert resp.status_code == 202, resp.json()
    spec = Job.objects.get().spec
    assert spec["hyperparameters"]["name"] == "bench-box" and "model" not in spec


def test_a_calibration_may_replace_a_measured_profile_but_not_a_hand_edited_one(api_client):
    costs.device_profile_save_measured(profile={"name": "box", "peak_ops": {"fp32": 1e9}, "bandwidth": 1e9})
    DeviceProfile.objects.create(name="vendor-x", label="Vendor X", peak_ops={"fp32": 1e12}, bandwidth=1e11)
    again = api_client.post("/api/jobs/", {"kind": "calibrate", "hyperparameters": {"name": "box"}}, format="json")
    assert again.status_code == 202, again.json()
    edited = api_client.post("/api/jobs/", {"kind": "calibrate", "hyperparameters": {"name": "vendor-x"}},
                             format="json")
    assert edited.status_code == 400 and "hand-edited" in " ".join(edited.json()["errors"]["hyperparameters.name"])
