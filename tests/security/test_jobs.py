"""Jobs: only registry names are accepted; no user string reaches a shell, eval, an import path or an unpickler;
checkpoints load with weights_only=True; a user has a limit of concurrent jobs that concurrent submits can't beat."""
from __future__ import annotations

import ast
import base64
import pickle
import threading
from pathlib import Path

import pytest
import torch
from rest_framework.test import APIClient

from experiments import services as exp_services
from runner.models import Job
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db

VALID = {"kind": "train", "model": "mlp", "dataset": "digits", "hyperparameters": {"epochs": 1}}


class Boom:
    """Unpickling this runs code: it creates the marker file. Nothing in Labbook may ever unpickle it."""

    marker: Path

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def pickled_boom(marker: Path) -> bytes:
    Boom.marker = marker
    return pickle.dumps(Boom())


CODE_STRINGS = [
    "os.system", "subprocess:Popen", "runner.engine.train:train_job", "runner.engine.train.train_job",
    "tests.runner.jobs_for_tests", "builtins.eval", "__import__('os').system('touch /tmp/labbook-pwned')",
    "eval('1+1')", "exec", "; touch /tmp/labbook-pwned", "$(touch /tmp/labbook-pwned)", "`touch /tmp/labbook-pwned`",
    "train && touch /tmp/labbook-pwned", "train | sh", "../../../../etc/passwd", "{{7*7}}", "${jndi:ldap://x}",
    "cos\nsystem\n(S'touch /tmp/labbook-pwned'\ntR.",  # protocol-0 pickle
    "PICKLE_B64",  # replaced below by a real base64 pickle of os.system(...)
    "train\x00", "TRAIN", " train", "",
]


class _OsSystem:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/labbook-pwned",))


CODE_STRINGS[CODE_STRINGS.index("PICKLE_B64")] = base64.b64encode(pickle.dumps(_OsSystem(), protocol=4)).decode()
CODE_STRINGS.append(pickle.dumps(_OsSystem(), protocol=0).decode("latin-1"))
# Every field whose value is looked up in a registry or checked against a typed range.
REGISTRY_FIELDS = [
    ("kind", lambda s, v: s.update(kind=v)),
    ("model", lambda s, v: s.update(model=v)),
    ("dataset", lambda s, v: s.update(dataset=v)),
    ("device", lambda s, v: s.update(device=v)),
    ("queue", lambda s, v: s.update(queue=v)),
    ("checkpoint", lambda s, v: s.update(checkpoint=v or "x")),
    ("timeout", lambda s, v: s.update(timeout=v)),
    ("processes", lambda s, v: s.update(processes=v)),
    ("seed", lambda s, v: s.update(seed=v)),
    ("parent_run", lambda s, v: s.update(parent_run=v or "x")),
    ("hyperparameters.optimizer", lambda s, v: s["hyperparameters"].update(optimizer=v)),
    ("hyperparameters.schedule", lambda s, v: s["hyperparameters"].update(schedule=v)),
    ("hyperparameters.amp", lambda s, v: s["hyperparameters"].update(amp=v)),
    ("hyperparameters.epochs", lambda s, v: s["hyperparameters"].update(epochs=v)),
]


def spec_with(setter, value) -> dict:
    spec = {**VALID, "hyperparameters": dict(VALID["hyperparameters"])}
    setter(spec, value)
    return spec


def test_the_valid_spec_is_accepted(api_client):
    response = api_client.post("/api/jobs/", VALID, format="json")
    assert response.status_code == 202, response.content


@pytest.mark.parametrize("field,setter", REGISTRY_FIELDS, ids=[f for f, _ in REGISTRY_FIELDS])
def test_code_shell_strings_and_pickles_in_registry_fields_are_400_naming_the_field(api_client, field, setter):
    for value in CODE_STRINGS:
        if field in ("kind", "queue") and value == "":
            continue  # an empty queue means "the default queue"; a missing kind is its own message
        response = api_client.post("/api/jobs/", spec_with(setter, value), format="json")
        assert response.status_code == 400, (field, value, response.status_code, response.content[:300])
        if isinstance(value, str) and "\x00" in value:  # refused by the JSON parser before any field is read
            assert "NUL" in response.json()["detail"]
            continue
        errors = response.json()["errors"]
        assert any(k == field or k.startswith(field.split(".")[0]) for k in errors), (field, value, errors)
    assert Job.objects.count() == 0
    assert not Path("/tmp/labbook-pwned").exists()


@pytest.mark.parametrize("extra", [
    {"module": "os", "function": "system", "args": ["touch /tmp/labbook-pwned"]},
    {"callable": "builtins.eval"}, {"__class__": "os.system"}, {"command": "touch /tmp/labbook-pwned"},
    {"hyperparameters": {"epochs": 1, "__reduce__": "os.system"}},
    {"hyperparameters": {"epochs": 1, "optimizer": {"__import__": "os"}}},
    {"kind": ["train"]}, {"kind": {"name": "train"}}, {"model": ["mlp", "os.system"]}, {"dataset": {"x": 1}},
    {"device": ["cpu"]}, {"data_dir": "/etc"}, {"data_dir": "../../"},
])
def test_unknown_keys_and_wrongly_typed_values_are_refused(api_client, extra):
    response = api_client.post("/api/jobs/", {**VALID, **extra}, format="json")
    assert response.status_code == 400, (extra, response.content[:300])
    assert Job.objects.count() == 0


@pytest.mark.parametrize("body,content_type", [
    (b"\x80\x04\x95\x00", "application/octet-stream"),
    (b"cos\nsystem\n(S'id'\ntR.", "application/python-pickle"),
    (b"[1, 2, 3]", "application/json"), (b'"train"', "application/json"), (b"kind=train", "text/plain"),
    (b"!!python/object/apply:os.system ['id']", "application/x-yaml"),
])
def test_a_spec_body_that_is_not_a_json_object_is_refused(api_client, body, content_type):
    response = api_client.generic("POST", "/api/jobs/", body, content_type=content_type)
    assert response.status_code in (400, 415), (body, response.status_code)
    assert Job.objects.count() == 0


@pytest.mark.parametrize("field", ["name", "project", "notes"])
def test_free_text_fields_are_stored_as_text_never_interpreted(api_client, field):
    value = "__import__('os').system('touch /tmp/labbook-pwned'); $(id) `id` {{7*7}}"
    response = api_client.post("/api/jobs/", {**VALID, field: value}, format="json")
    assert response.status_code == 202, response.content
    job = Job.objects.get()
    stored = {"name": job.run.name, "project": job.run.project.name, "notes": job.run.notes}[field]
    assert stored == value
    assert not Path("/tmp/labbook-pwned").exists()


def test_tags_with_shell_characters_are_400(api_client):
    for tags in (["$(id)"], ["a;b"], ["`id`"], "x, $(id)", [{"__import__": "os"}]):
        response = api_client.post("/api/jobs/", {**VALID, "tags": tags}, format="json")
        assert response.status_code == 400 and "tags" in response.json()["errors"], tags


# --- checkpoints -----------------------------------------------------------------------------------------------------

def test_a_pickled_object_in_a_checkpoint_is_refused_by_the_engine_loader(tmp_path):
    from runner.engine.common import load_checkpoint

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    Boom.marker = marker
    torch.save({"format": "labbook-engine-checkpoint", "model": Boom()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)
    assert not marker.exists()
    # The raw pickle variant (not even a torch zip file) is refused too.
    path.write_bytes(pickled_boom(marker))
    with pytest.raises((pickle.UnpicklingError, RuntimeError)):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_malicious_checkpoint_artifact_is_refused_by_the_cost_api_and_not_executed(api_client, user, settings,
                                                                                     tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    marker = tmp_path / "pwned"
    project = exp_services.project_get_or_create(owner=user, name="ckpt")
    run = exp_services.run_create(owner=user, project=project, name="r", config={})
    Boom.marker = marker
    evil = tmp_path / "evil.pt"
    torch.save({"format": "labbook-engine-checkpoint", "arch": {}, "model": Boom()}, evil)
    exp_services.artifact_store(run=run, path="ckpt/evil.pt", chunks=[evil.read_bytes()], kind="checkpoint")
    response = api_client.post("/api/cost/estimate/", {"checkpoint": f"{run.pk}/ckpt/evil.pt"}, format="json")
    assert response.status_code == 400 and "checkpoint" in response.json()["errors"], response.content
    assert not marker.exists()


# --- no user string reaches a shell, eval, an import or an unpickler: the source says so ----------------------------

APP_DIRS = ["labbook", "notes", "experiments", "runner"]
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_ATTRS = {("os", "system"), ("os", "popen"), ("pickle", "load"), ("pickle", "loads"), ("marshal", "loads"),
                   ("yaml", "load"), ("yaml", "unsafe_load"), ("dill", "load"), ("cloudpickle", "load"),
                   ("cloudpickle", "loads"), ("shelve", "open")}


def _app_sources():
    for d in APP_DIRS:
        for path in sorted((ROOT / d).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, ast.parse(path.read_text(), filename=str(path))


def test_no_eval_exec_pickle_or_shell_in_application_code():
    problems = []
    for path, tree in _app_sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if isinstance(fn, ast.Name) and fn.id in FORBIDDEN_CALLS:
                problems.append(f"{where} {fn.id}()")
            if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) and (fn.value.id, fn.attr) in FORBIDDEN_ATTRS:
                problems.append(f"{where} {fn.value.id}.{fn.attr}()")
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    problems.append(f"{where} shell=")
                if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    problems.append(f"{where} allow_pickle=")
            is_torch_load = isinstance(fn, ast.Attribute) and fn.attr == "load" and isinstance(fn.value, ast.Name) \
                and fn.value.id == "torch"
            if is_torch_load:
                weights_only = [kw for kw in node.keywords if kw.arg == "weights_only"]
                if not weights_only or not (isinstance(weights_only[0].value, ast.Constant)
                                            and weights_only[0].value.value is True):
                    problems.append(f"{where} torch.load without weights_only=True")
    assert problems == []


def test_import_module_is_only_called_with_names_from_code_or_settings():
    """importlib.import_module appears only where the module name is a literal, a registry entry or a setting."""
    allowed = {"runner/engine/jobs.py", "runner/registry.py", "runner/child.py"}
    users = set()
    for path, tree in _app_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module":
                users.add(str(path.relative_to(ROOT)))
    assert users <= allowed, users - allowed


def test_celery_accepts_json_only_and_tasks_take_ids():
    from django.conf import settings

    from labbook.celery import app

    assert settings.CELERY_ACCEPT_CONTENT == ["json"] and app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json" and app.conf.result_serializer == "json"


def test_engine_child_reads_its_spec_as_json_not_pickle():
    source = (ROOT / "runner" / "child.py").read_text() + (ROOT / "runner" / "execution.py").read_text()
    assert "pickle" not in source and "json" in source


# --- per-user limit of concurrent jobs -----------------------------------------------------------------------------

def test_the_limit_is_per_user_and_another_user_is_not_blocked(api_client, other_user, settings):
    from labbook.core.services import token_create

    settings.JOBS_MAX_ACTIVE_PER_USER = 1
    assert api_client.post("/api/jobs/", VALID, format="json").status_code == 202
    refused = api_client.post("/api/jobs/", VALID, format="json")
    assert refused.status_code == 429 and "limit 1" in refused.json()["detail"]
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(user=other_user, name='t')[1]}")
    assert other.post("/api/jobs/", VALID, format="json").status_code == 202


@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_cannot_exceed_the_limit(user, settings):
    """Eight submits at the same moment from one user with a limit of two: exactly two jobs exist afterwards."""
    from django.db import connection

    from runner import services

    settings.JOBS_MAX_ACTIVE_PER_USER = 2
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def submit():
        try:
            barrier.wait()
            services.job_submit(owner=user, spec=dict(VALID))
            outcomes.append("ok")
        except services.JobLimitExceeded:
            outcomes.append("limit")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["limit"] * 6 + ["ok"] * 2
    assert Job.objects.filter(owner=user).count() == 2

