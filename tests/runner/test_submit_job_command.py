"""``manage.py submit_job``: YAML/JSON spec files, --detach, errors that name the field."""
from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from runner.models import Job

pytestmark = pytest.mark.django_db


def test_detach_submits_a_yaml_spec_and_returns(user, tmp_path, capsys):
    spec = tmp_path / "exp.yaml"
    spec.write_text("kind: test_count\nname: from-yaml\ntags: [cli]\nhyperparameters:\n  steps: 3\n")
    call_command("submit_job", str(spec), "--detach")
    job = Job.objects.get()
    assert job.owner == user and job.run.name == "from-yaml" and job.spec["hyperparameters"]["steps"] == 3
    assert f"job {job.pk}" in capsys.readouterr().out


def test_json_spec_and_set_override(user, tmp_path):
    spec = tmp_path / "exp.json"
    spec.write_text(json.dumps({"kind": "test_count", "hyperparameters": {"steps": 3}}))
    call_command("submit_job", str(spec), "--detach", "--set", "hyperparameters.steps=5", "--set", "seed=7")
    job = Job.objects.get()
    assert job.spec["hyperparameters"]["steps"] == 5 and job.spec["seed"] == 7


def test_invalid_spec_names_the_field(user, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("kind: test_count\ndevice: tpu\n")
    with pytest.raises(CommandError, match="device: unknown device 'tpu'; allowed: auto, cpu, cuda"):
        call_command("submit_job", str(spec), "--detach")
    assert not Job.objects.exists()


def test_several_users_need_user_flag(user, other_user, tmp_path):
    spec = tmp_path / "exp.yaml"
    spec.write_text("kind: test_count\n")
    with pytest.raises(CommandError, match="--user"):
        call_command("submit_job", str(spec), "--detach")
    call_command("submit_job", str(spec), "--detach", "--user", other_user.username)
    assert Job.objects.get().owner == other_user


def test_not_a_mapping_is_an_error(user, tmp_path):
    spec = tmp_path / "list.yaml"
    spec.write_text("- a\n- b\n")
    with pytest.raises(CommandError, match="mapping"):
        call_command("submit_job", str(spec), "--detach")
