"""Runs, projects and artifacts API against PostgreSQL."""
from __future__ import annotations

import hashlib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from experiments import storage
from experiments.models import Artifact, Project, Run, RunTag
from tests.experiments.factories import log, make_run

pytestmark = pytest.mark.django_db


def test_create_run_auto_creates_the_project_and_flattens_params(api_client, user):
    parent = make_run(user, name="trained")
    resp = api_client.post("/api/runs/", {
        "project": "ResNet CIFAR", "name": "pruned-50", "kind": "prune",
        "config": {"optim": {"lr": 0.01}, "sparsity": 0.5}, "tags": ["w4a4", "w4a4", "resnet20"],
        "parent": parent.pk, "git_commit": "abc123", "git_dirty": True, "command": "python train.py",
        "environment": {"python": "3.11.9", "torch": "2.13.0"}, "seed": 7,
    }, format="json")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["project"]["name"] == "ResNet CIFAR" and body["project"]["slug"] == "resnet-cifar"
    assert body["params"] == {"optim.lr": 0.01, "sparsity": 0.5}
    assert body["tags"] == ["resnet20", "w4a4"]
    assert body["parent"] == parent.pk and body["seed"] == 7 and body["git_dirty"] is True
    assert set(RunTag.objects.filter(run_id=body["id"]).values_list("name", flat=True)) == {"w4a4", "resnet20"}
    assert Project.objects.filter(owner=user, name="ResNet CIFAR").count() == 1


def test_create_with_the_same_client_id_returns_the_first_run(api_client, user):
    first = api_client.post("/api/runs/", {"project": "p", "client_id": "abc-123"}, format="json")
    second = api_client.post("/api/runs/", {"project": "p", "client_id": "abc-123"}, format="json")
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert Run.objects.filter(owner=user).count() == 1


def test_create_refuses_a_parent_of_another_user_naming_the_field(api_client, user, other_user):
    theirs = make_run(other_user)
    resp = api_client.post("/api/runs/", {"project": "p", "parent": theirs.pk}, format="json")
    assert resp.status_code == 400 and "parent" in resp.json()["errors"]


def test_list_filters_with_the_query_language_and_reports_errors_as_400(api_client, user, other_user):
    a = make_run(user, name="a", config={"lr": 0.001}, tags=["w4a4"])
    b = make_run(user, name="b", config={"lr": 0.1}, tags=["w4a4"])
    make_run(other_user, name="x", config={"lr": 0.001}, tags=["w4a4"])
    log(a, "acc", [0.5, 0.95])
    log(b, "acc", [0.5, 0.97])
    resp = api_client.get("/api/runs/", {"q": 'params.lr < 0.01 and metrics.acc > 0.9 and tag = "w4a4"'})
    assert resp.status_code == 200
    assert [r["name"] for r in resp.json()["results"]] == ["a"]
    bad = api_client.get("/api/runs/", {"q": "params.lr <"})
    assert bad.status_code == 400
    assert bad.json()["errors"]["q"] == ["expected a value after '<' at column 12"]


def test_list_sorts_by_metric_descending(api_client, user):
    for name, acc in [("low", 0.1), ("high", 0.9), ("mid", 0.5)]:
        log(make_run(user, name=name), "acc", [acc])
    make_run(user, name="none")
    resp = api_client.get("/api/runs/", {"sort": "-metrics.acc"})
    assert [r["name"] for r in resp.json()["results"]] == ["high", "mid", "low", "none"]


def test_update_status_notes_and_tags(api_client, user):
    run = make_run(user, tags=["old"])
    resp = api_client.patch(f"/api/runs/{run.pk}/", {"status": "succeeded", "notes": "# done", "tags": ["new"]},
                            format="json")
    assert resp.status_code == 200, resp.content
    run.refresh_from_db()
    assert run.status == "succeeded" and run.ended_at is not None and run.notes == "# done"
    assert list(RunTag.objects.filter(run=run).values_list("name", flat=True)) == ["new"]
    assert api_client.patch(f"/api/runs/{run.pk}/", {"status": "bogus"}, format="json").status_code == 400


def test_bulk_tag_and_bulk_delete_only_touch_own_runs(api_client, user, other_user, django_capture_on_commit_callbacks):
    mine = [make_run(user), make_run(user)]
    theirs = make_run(other_user)
    ids = [r.pk for r in mine] + [theirs.pk]
    resp = api_client.post("/api/runs/bulk/", {"ids": ids, "action": "tag", "tags": ["sweep1"]}, format="json")
    assert resp.json() == {"changed": 2}
    assert RunTag.objects.filter(name="sweep1").count() == 2
    f = storage.run_dir(mine[0].pk) / "ckpt.pt"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(b"weights")
    with django_capture_on_commit_callbacks(execute=True):
        resp = api_client.post("/api/runs/bulk/", {"ids": ids, "action": "delete"}, format="json")
    assert resp.json() == {"deleted": 2}
    assert not f.exists() and not storage.run_dir(mine[0].pk).exists()
    assert Run.objects.filter(pk=theirs.pk).exists()


def test_other_users_runs_are_404_everywhere(api_client, user, other_user):
    run = make_run(other_user)
    for url in (f"/api/runs/{run.pk}/", f"/api/runs/{run.pk}/series/", f"/api/runs/{run.pk}/artifacts/",
                f"/api/runs/{run.pk}/series/loss/raw/"):
        assert api_client.get(url).status_code == 404, url
    assert api_client.delete(f"/api/runs/{run.pk}/").status_code == 404
    assert Run.objects.filter(pk=run.pk).exists()


def test_artifact_upload_hashes_and_download_is_a_safe_attachment(api_client, user):
    run = make_run(user)
    content = b"<html><script>alert(1)</script></html>" * 100
    upload = SimpleUploadedFile("report.html", content, content_type="text/html")
    resp = api_client.post(f"/api/runs/{run.pk}/artifacts/", {"file": upload, "path": "reports/r.html",
                                                               "kind": "report"}, format="multipart")
    assert resp.status_code == 201, resp.content
    art = resp.json()
    assert art["sha256"] == hashlib.sha256(content).hexdigest() and art["size"] == len(content)
    assert (storage.run_dir(run.pk) / "reports" / "r.html").read_bytes() == content
    assert not [p for p in storage.run_dir(run.pk).iterdir() if p.name.startswith(".upload-")]
    dl = api_client.get(art["download_url"])
    assert dl.status_code == 200
    assert b"".join(dl.streaming_content) == content
    assert dl["Content-Type"] == "application/octet-stream"
    assert dl["X-Content-Type-Options"] == "nosniff"
    assert dl["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize("bad", ["../escape.txt", "/etc/passwd", "a\\..\\b", "%2e%2e/x", "a/%2E%2E/%2E%2E/b", "C:/x"])
def test_artifact_paths_with_traversal_are_400(api_client, user, bad):
    run = make_run(user)
    upload = SimpleUploadedFile("x.txt", b"data")
    resp = api_client.post(f"/api/runs/{run.pk}/artifacts/", {"file": upload, "path": bad}, format="multipart")
    assert resp.status_code == 400, (bad, resp.content)
    assert "path" in resp.json()["errors"]
    assert not Artifact.objects.filter(run=run).exists()
    d = storage.run_dir(run.pk)
    assert not d.exists() or not [p for p in d.rglob("*") if p.is_file()]


def test_a_symlink_inside_the_run_directory_cannot_escape(api_client, user, tmp_path):
    run = make_run(user)
    outside = tmp_path / "outside"
    outside.mkdir()
    storage.run_dir(run.pk).mkdir(parents=True, exist_ok=True)
    (storage.run_dir(run.pk) / "link").symlink_to(outside)
    upload = SimpleUploadedFile("x.txt", b"data")
    resp = api_client.post(f"/api/runs/{run.pk}/artifacts/", {"file": upload, "path": "link/x.txt"},
                           format="multipart")
    assert resp.status_code == 400
    assert not (outside / "x.txt").exists()


def test_artifact_over_the_size_limit_is_413_and_leaves_nothing(api_client, user, settings):
    settings.ARTIFACT_MAX_BYTES = 1000
    run = make_run(user)
    resp = api_client.post(f"/api/runs/{run.pk}/artifacts/", {"file": SimpleUploadedFile("big.bin", b"x" * 5000)},
                           format="multipart")
    assert resp.status_code == 413
    assert "1000" in resp.json()["detail"]
    d = storage.run_dir(run.pk)
    assert not d.exists() or not list(d.rglob("*"))
    raw = api_client.put(f"/api/runs/{run.pk}/artifacts/big.bin", data=b"x" * 5000,
                         content_type="application/octet-stream")
    assert raw.status_code == 413


def test_raw_put_upload_and_delete(api_client, user):
    run = make_run(user)
    resp = api_client.put(f"/api/runs/{run.pk}/artifacts/ckpt/model.pt?kind=checkpoint", data=b"\x00\x01" * 50,
                          content_type="application/octet-stream")
    assert resp.status_code == 201, resp.content
    assert resp.json()["kind"] == "checkpoint" and resp.json()["size"] == 100
    assert [a["path"] for a in api_client.get(f"/api/runs/{run.pk}/artifacts/").json()] == ["ckpt/model.pt"]


def test_projects_api_lists_only_own_projects(api_client, user, other_user):
    make_run(user, project="mine")
    make_run(other_user, project="theirs")
    resp = api_client.get("/api/projects/")
    assert [p["name"] for p in resp.json()] == ["mine"] and resp.json()[0]["run_count"] == 1
    assert api_client.post("/api/projects/", {"name": "New one"}, format="json").status_code == 201


def test_schema_covers_the_experiments_endpoints(api_client):
    resp = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert resp.status_code == 200
    paths = json.loads(resp.content)["paths"]
    for p in ("/api/runs/", "/api/runs/{id}/metrics/", "/api/runs/{id}/series/", "/api/runs/{id}/artifacts/",
              "/api/projects/", "/api/runs/bulk/"):
        assert p in paths, p


def test_runs_csv_export_has_params_and_metric_columns_and_defuses_formulas(auth_client, user):
    run = make_run(user, name="=HYPERLINK(1)", config={"lr": 0.1})
    log(run, "acc", [0.5, 0.9, 0.7])
    resp = auth_client.get("/runs/export.csv", {"q": "params.lr > 0.01"})
    assert resp.status_code == 200 and resp["Content-Disposition"].startswith("attachment")
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(b"".join(resp.streaming_content).decode())))
    assert len(rows) == 1
    assert rows[0]["name"] == "'=HYPERLINK(1)"
    assert rows[0]["params.lr"] == "0.1" and rows[0]["metrics.acc"] == "0.7" and rows[0]["metrics.acc.best"] == "0.9"
    assert auth_client.get("/runs/export.csv", {"q": "params.lr <"}).status_code == 400


def test_pages_render_and_query_errors_show_inline(auth_client, user, other_user):
    run = make_run(user, name="mine", config={"lr": 0.1})
    theirs = make_run(other_user, name="theirs")
    page = auth_client.get("/runs/", {"q": "params.lr <"})
    assert page.status_code == 400 and b"expected a value after &#x27;&lt;&#x27; at column 12" in page.content
    assert auth_client.get(f"/runs/{run.pk}/").status_code == 200
    assert auth_client.get(f"/runs/{theirs.pk}/").status_code == 404
    compare = auth_client.get("/runs/compare/", {"ids": f"{run.pk},{theirs.pk}"})
    assert compare.status_code == 200 and b"theirs" not in compare.content


def test_admin_lists_load(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "r@example.com", "a long admin password")
    client.force_login(admin)
    run = make_run(admin)
    log(run, "acc", [0.1])
    for url in ("/admin/experiments/run/", "/admin/experiments/project/", "/admin/experiments/artifact/",
                f"/admin/experiments/run/{run.pk}/change/"):
        assert client.get(url).status_code == 200, url
    # Points have no admin list (a composite primary key); the run's page shows their summary.
    assert client.get("/admin/experiments/metricpoint/").status_code == 404
    assert b"&quot;acc&quot;" in client.get(f"/admin/experiments/run/{run.pk}/change/").content


def test_lineage_follows_parents_and_children_of_the_same_owner(api_client, user, other_user):
    trained = make_run(user, name="trained", kind="train")
    pruned = make_run(user, name="pruned", kind="prune", parent=trained)
    make_run(user, name="quantized", kind="quantize", parent=pruned)
    make_run(user, name="sibling", kind="prune", parent=trained)
    body = api_client.get(f"/api/runs/{pruned.pk}/lineage/").json()
    assert sorted(n["name"] for n in body["nodes"]) == ["pruned", "quantized", "trained"]
    assert {(e["from"], e["to"]) for e in body["edges"]} >= {(trained.pk, pruned.pk)}
    assert [n["name"] for n in body["nodes"] if n["current"]] == ["pruned"]
    cycle = api_client.patch(f"/api/runs/{trained.pk}/", {"parent": pruned.pk}, format="json")
    assert cycle.status_code == 400 and "parent" in cycle.json()["errors"]


def test_artifact_upload_with_a_browser_session_and_csrf_token(client, user):
    from django.test import Client

    run = make_run(user)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    browser.get("/runs/")  # sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    resp = browser.post(f"/api/runs/{run.pk}/artifacts/", {"file": SimpleUploadedFile("plot.png", b"png"),
                                                            "csrfmiddlewaretoken": token}, HTTP_X_CSRFTOKEN=token)
    assert resp.status_code == 201, resp.content
    assert (storage.run_dir(run.pk) / "plot.png").read_bytes() == b"png"
    refused = browser.post(f"/api/runs/{run.pk}/artifacts/", {"file": SimpleUploadedFile("x.png", b"png")})
    assert refused.status_code == 403
