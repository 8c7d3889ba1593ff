"""The job pages: the queue at /jobs/, the form at /jobs/new/ (same spec as the API, errors on their fields) and
"clone and modify" from a job or from any run (also one logged by the Python client)."""
from __future__ import annotations

import re

import pytest
from django.utils import timezone

from experiments.services import project_get_or_create, run_create
from runner import services
from runner.models import Job
from tests.runner.support import count_spec

pytestmark = pytest.mark.django_db

TRAIN_FORM = {"kind": "train", "model": "mlp", "dataset": "digits", "hyperparameters": "epochs: 2\nlr: 0.01",
              "device": "auto", "processes": "1", "seed": "3", "project": "default", "name": "from the form",
              "tags": "a, b"}
TRAIN_API = {"kind": "train", "model": "mlp", "dataset": "digits", "hyperparameters": {"epochs": 2, "lr": 0.01},
             "device": "auto", "processes": 1, "seed": 3, "project": "default", "name": "from the form",
             "tags": ["a", "b"]}


def _row(html: str, job_id: int) -> str:
    match = re.search(rf'<tr data-job="{job_id}">(.*?)</tr>', html, re.S)
    assert match, f"no row for job {job_id}"
    return match.group(1)


def test_jobs_page_shows_state_progress_device_worker_elapsed_eta_and_cancel(auth_client, user):
    running = services.job_submit(owner=user, spec={**count_spec(), "device": "cpu"})
    services.job_start(job_id=running.pk, hostname="gpu0@node-7", pid=123)
    services.job_record_progress(job_id=running.pk, step=30, total=100, epoch=1, message="", eta_s=125.0)
    Job.objects.filter(pk=running.pk).update(started_at=timezone.now() - timezone.timedelta(seconds=65))
    queued = services.job_submit(owner=user, spec=count_spec())
    finished = services.job_submit(owner=user, spec=count_spec())
    services.job_cancel(job=finished, user=user)

    html = auth_client.get("/jobs/").content.decode()

    row = _row(html, running.pk)
    assert 'data-col="status">running<' in row
    assert '<progress max="100" value="30"></progress> 30%' in row
    assert "cpu" in row and "gpu0@node-7" in row
    assert re.search(r'data-col="elapsed">1m 0[5-9]s<', row)
    assert re.search(r'data-col="eta">[12]m \d\ds<', row)  # counted down from 125 s at the last report
    assert f'data-cancel="{running.pk}"' in row
    assert f'data-cancel="{queued.pk}"' in _row(html, queued.pk)
    finished_row = _row(html, finished.pk)
    assert 'data-col="status">cancelled<' in finished_row and "data-cancel" not in finished_row
    assert "js/runner/jobs.js" in html  # which refreshes the table from /api/jobs/


def test_jobs_page_lists_only_the_users_jobs(auth_client, other_user):
    theirs = services.job_submit(owner=other_user, spec=count_spec())
    html = auth_client.get("/jobs/").content.decode()
    assert f'data-job="{theirs.pk}"' not in html and "No jobs yet" in html
    assert auth_client.get(f"/jobs/{theirs.pk}/").status_code == 404


def test_the_form_submits_the_same_spec_as_the_api(auth_client, api_client, user):
    resp = auth_client.post("/jobs/new/", TRAIN_FORM)
    assert resp.status_code == 302, resp.content.decode()
    from_form = Job.objects.get(run__name="from the form", request__kind="train", pk=int(resp.url.split("/")[2]))

    api = api_client.post("/api/jobs/", TRAIN_API, format="json")
    assert api.status_code == 202, api.json()
    from_api = Job.objects.get(pk=api.json()["job"]["id"])

    assert from_form.spec == from_api.spec
    assert from_form.request == from_api.request == TRAIN_API
    assert from_form.run.tags == ["a", "b"] and from_form.queue == from_api.queue == "cpu"


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"hyperparameters": "epochs: 0"}, "hyperparameters", "hyperparameters.epochs:"),
        ({"hyperparameters": "epochs: [1"}, "hyperparameters", "not valid YAML"),
        ({"processes": "3", "hyperparameters": "batch_size: 64"}, "hyperparameters", "divisible by processes"),
        ({"checkpoint": "../../etc/passwd"}, "checkpoint", "checkpoint artifact"),
        ({"parent_run": "999999"}, "parent_run", "no run 999999"),
        ({"model": "resnet99"}, "model", "resnet99"),
        ({"extra": "resume: maybe"}, "extra", "resume:"),
        ({"tags": "bad tag!"}, "tags", "list of at most 50 tags"),
    ],
)
def test_form_errors_are_shown_on_their_field(auth_client, changes, field, fragment):
    resp = auth_client.post("/jobs/new/", {**TRAIN_FORM, **changes})
    assert resp.status_code == 200
    html = resp.content.decode()
    match = re.search(rf'<ul class="errorlist" data-error-for="{field}">(.*?)</ul>', html, re.S)
    shown = re.findall(r'data-error-for="(\w+)"', html)
    assert match, f"no error shown on {field}; errors on: {shown}"
    assert fragment in match.group(1).replace("&#x27;", "'")
    assert not Job.objects.exists()


def test_clone_of_a_job_prefills_the_form_with_its_request(auth_client, user):
    job = services.job_submit(owner=user, spec={**TRAIN_API, "name": "baseline"})

    resp = auth_client.get(f"/jobs/new/?from_job={job.pk}")

    initial = resp.context["form"].initial
    assert initial["kind"] == "train" and initial["model"] == "mlp" and initial["seed"] == 3
    assert initial["name"] == "baseline (clone)" and initial["tags"] == "a, b"
    assert "epochs: 2" in initial["hyperparameters"] and "lr: 0.01" in initial["hyperparameters"]
    assert "Prefilled from" in resp.content.decode()


def test_a_run_logged_by_the_client_clones_into_a_job_that_validates(auth_client, user):
    # Given a run the Python client logged, with a flat config (no job made it)
    project = project_get_or_create(owner=user, name="notebook")
    run = run_create(owner=user, project=project, name="my script", kind="train", tags=["exp1"],
                     config={"model": "mlp", "dataset": "digits", "lr": 0.02, "epochs": 3, "seed": 5})
    page = auth_client.get(f"/runs/{run.pk}/").content.decode()
    assert f'href="/jobs/new/?from_run={run.pk}"' in page

    # When it is cloned, the form is prefilled: engine settings of its kind became hyperparameters
    resp = auth_client.get(f"/jobs/new/?from_run={run.pk}")
    initial = resp.context["form"].initial
    assert initial["kind"] == "train" and initial["model"] == "mlp" and initial["dataset"] == "digits"
    assert initial["seed"] == 5 and initial["project"] == "notebook" and initial["tags"] == "exp1"
    assert "lr: 0.02" in initial["hyperparameters"] and "epochs: 3" in initial["hyperparameters"]

    # And submitting the prefilled form unchanged makes a valid job
    data = {k: v for k, v in initial.items() if v is not None}
    data.setdefault("device", "auto")
    data.setdefault("processes", 1)
    submitted = auth_client.post("/jobs/new/", data)
    assert submitted.status_code == 302, submitted.content.decode()
    job = Job.objects.get()
    assert job.spec["hyperparameters"]["lr"] == 0.02 and job.spec["hyperparameters"]["epochs"] == 3
    assert job.run.name == "my script (clone)" and job.run.project.name == "notebook"


def test_clone_of_another_users_run_is_404(auth_client, other_user):
    project = project_get_or_create(owner=other_user, name="theirs")
    run = run_create(owner=other_user, project=project, name="secret", kind="train", config={"model": "mlp"})
    assert auth_client.get(f"/jobs/new/?from_run={run.pk}").status_code == 404
    assert auth_client.get("/jobs/new/?from_run=abc").status_code == 404
