"""The job API: validation that names fields, ownership, limits, and state transitions (no worker needed)."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from experiments.models import Artifact, Run
from labbook.core.services import token_create
from runner import services
from runner.models import Job, JobLogLine
from tests.runner.support import count_spec

pytestmark = pytest.mark.django_db


def test_submit_creates_run_and_job_queued(api_client, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = api_client.post("/api/jobs/", {**count_spec(), "name": "first", "tags": ["w4a4"]}, format="json")
    assert resp.status_code == 202, resp.json()
    body = resp.json()
    job = Job.objects.get(pk=body["job"]["id"])
    assert job.owner == user and job.status == "queued" and job.queue == "cpu"
    assert job.run.status == "queued" and job.run.name == "first" and job.run.tags == ["w4a4"]
    assert job.run.project.name == "tests"
    assert body["job"]["stream_url"] == f"/stream/runs/{job.run_id}/"
    assert len(callbacks) >= 1  # dispatch waits for the commit


@pytest.mark.parametrize(
    ("spec", "field", "fragment"),
    [
        ({"kind": "nope"}, "kind", "allowed:"),
        ({"kind": "test_count", "device": "tpu"}, "device", "allowed: auto, cpu, cuda"),
        ({"kind": "test_count", "queue": "fast"}, "queue", "allowed: cpu, gpu"),
        ({"kind": "test_count", "processes": 0}, "processes", "between 1 and 64"),
        ({"kind": "test_count", "timeout": "soon"}, "timeout", "integer"),
        ({"kind": "test_count", "tags": "bad tag!"}, "tags", "tags"),
        ({"kind": "test_count", "hyperparameters": [1, 2]}, "hyperparameters", "object"),
        ({"kind": "test_count", "parent_run": 999999}, "parent_run", "no run 999999"),
        ({"kind": "test_count", "checkpoint": "../../etc/passwd"}, "checkpoint", "checkpoint artifact"),
    ],
)
def test_bad_spec_is_400_naming_the_field(api_client, spec, field, fragment):
    resp = api_client.post("/api/jobs/", spec, format="json")
    assert resp.status_code == 400
    errors = resp.json()["errors"]
    assert field in errors, errors
    assert fragment in " ".join(errors[field])
    assert not Job.objects.exists() and not Run.objects.exists()


def test_kind_error_lists_the_registered_kinds(api_client):
    resp = api_client.post("/api/jobs/", {"kind": "resnet"}, format="json")
    message = " ".join(resp.json()["errors"]["kind"])
    assert "test_count" in message


def test_checkpoint_of_another_users_run_is_rejected(api_client, other_user):
    other_job = services.job_submit(owner=other_user, spec=count_spec())
    Artifact.objects.create(run=other_job.run, path="checkpoints/step_1.pt", kind="checkpoint")
    resp = api_client.post("/api/jobs/", {**count_spec(), "checkpoint": f"{other_job.run_id}/checkpoints/step_1.pt"},
                           format="json")
    assert resp.status_code == 400 and "checkpoint" in resp.json()["errors"]


def test_parent_run_supplies_its_newest_checkpoint(api_client, user):
    parent = services.job_submit(owner=user, spec=count_spec()).run
    Artifact.objects.create(run=parent, path="checkpoints/step_5.pt", kind="checkpoint")
    resp = api_client.post("/api/jobs/", {"kind": "test_count", "parent_run": parent.pk}, format="json")
    assert resp.status_code == 202
    job = Job.objects.get(pk=resp.json()["job"]["id"])
    assert job.spec["checkpoint"] == f"{parent.pk}/checkpoints/step_5.pt" and job.run.parent == parent


def test_oversized_spec_is_413(api_client):
    resp = api_client.post("/api/jobs/", {**count_spec(), "notes": "x" * 70000}, format="json")
    assert resp.status_code == 413 and "KiB" in resp.json()["detail"]


def test_active_job_limit_answers_429(api_client, user, settings):
    settings.JOBS_MAX_ACTIVE_PER_USER = 2
    for _ in range(2):
        assert api_client.post("/api/jobs/", count_spec(), format="json").status_code == 202
    resp = api_client.post("/api/jobs/", count_spec(), format="json")
    assert resp.status_code == 429 and "limit 2" in resp.json()["detail"]
    assert Job.objects.count() == 2


def test_other_users_jobs_are_404_and_not_listed(api_client, other_user):
    theirs = services.job_submit(owner=other_user, spec=count_spec())
    for method, url in [("get", f"/api/jobs/{theirs.pk}/"), ("post", f"/api/jobs/{theirs.pk}/cancel/"),
                        ("post", f"/api/jobs/{theirs.pk}/retry/"), ("get", f"/api/jobs/{theirs.pk}/log/")]:
        assert getattr(api_client, method)(url).status_code == 404, url
    assert api_client.get("/api/jobs/").json()["results"] == []


def test_unauthenticated_requests_are_refused():
    assert APIClient().get("/api/jobs/").status_code in (401, 403)
    assert APIClient().post("/api/jobs/", count_spec(), format="json").status_code in (401, 403)


def test_cancel_of_a_queued_job_cancels_it_at_once(api_client, user):
    job = services.job_submit(owner=user, spec=count_spec())
    resp = api_client.post(f"/api/jobs/{job.pk}/cancel/")
    assert resp.status_code == 202 and resp.json()["status"] == "cancelled"
    job.refresh_from_db()
    assert job.run.status == "cancelled"
    assert api_client.post(f"/api/jobs/{job.pk}/cancel/").status_code == 409


def test_cancel_of_a_running_job_sets_the_flag(api_client, user):
    job = services.job_submit(owner=user, spec=count_spec())
    services.job_start(job_id=job.pk, hostname="w1", pid=1)
    resp = api_client.post(f"/api/jobs/{job.pk}/cancel/")
    assert resp.json()["status"] == "running" and resp.json()["cancel_requested"] is True
    assert services.job_heartbeat(job_id=job.pk) is True


def test_retry_copies_the_request_into_a_new_job(api_client, user):
    job = services.job_submit(owner=user, spec={**count_spec(steps=7), "name": "orig"})
    assert api_client.post(f"/api/jobs/{job.pk}/retry/").status_code == 409  # still queued
    services.job_cancel(job=job, user=user)
    resp = api_client.post(f"/api/jobs/{job.pk}/retry/")
    assert resp.status_code == 202
    new = Job.objects.get(pk=resp.json()["job"]["id"])
    assert new.retry_of == job and new.spec["hyperparameters"]["steps"] == 7 and new.run_id != job.run_id


def test_resume_without_checkpoint_is_409(api_client, user):
    job = services.job_submit(owner=user, spec=count_spec())
    services.job_cancel(job=job, user=user)
    resp = api_client.post(f"/api/jobs/{job.pk}/resume/")
    assert resp.status_code == 409 and "no checkpoint" in resp.json()["detail"]


def test_log_endpoint_pages_by_sequence(api_client, user):
    job = services.job_submit(owner=user, spec=count_spec())
    services.job_log_append(job_id=job.pk, lines=[("engine", f"line {i}") for i in range(5)])
    first = api_client.get(f"/api/jobs/{job.pk}/log/?limit=3").json()
    assert [line["text"] for line in first["lines"]] == ["line 0", "line 1", "line 2"]
    rest = api_client.get(f"/api/jobs/{job.pk}/log/?after={first['next_after']}").json()
    assert [line["text"] for line in rest["lines"]] == ["line 3", "line 4"]
    tail = api_client.get(f"/api/jobs/{job.pk}/log/?tail=2").json()
    assert [line["seq"] for line in tail["lines"]] == [3, 4]
    assert api_client.get(f"/api/jobs/{job.pk}/log/?after=x").status_code == 400
    assert JobLogLine.objects.filter(job=job).count() == 5


def test_list_filters_by_status(api_client, user):
    a = services.job_submit(owner=user, spec=count_spec())
    b = services.job_submit(owner=user, spec=count_spec())
    services.job_cancel(job=b, user=user)
    ids = [j["id"] for j in api_client.get("/api/jobs/?status=active").json()["results"]]
    assert ids == [a.pk]
    assert api_client.get("/api/jobs/?status=weird").status_code == 400


def test_options_list_registries(api_client):
    body = api_client.get("/api/jobs/options/").json()
    assert "test_count" in body["kind"] and body["device"] == ["auto", "cpu", "cuda"]


def test_schema_documents_job_endpoints(api_client):
    schema = api_client.get("/api/schema/?format=json").json()
    for path in ("/api/jobs/", "/api/jobs/{job_id}/", "/api/jobs/{job_id}/cancel/", "/api/jobs/{job_id}/retry/",
                 "/api/jobs/{job_id}/resume/", "/api/jobs/{job_id}/log/", "/api/jobs/options/"):
        assert path in schema["paths"], path


def test_token_of_another_user_sees_only_their_jobs(user, other_user):
    mine = services.job_submit(owner=user, spec=count_spec())
    _, raw = token_create(user=other_user, name="t")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(f"/api/jobs/{mine.pk}/").status_code == 404
