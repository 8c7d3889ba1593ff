"""Object-level permissions: two users, each with private notes, runs, metrics, jobs and artifacts.

Neither may read, list, search, stream, export or modify the other's objects, through the API or the pages, and no
listing, search result, backlink or rendered [[link]] may leak the other's titles. Every route is tried in both
directions (alice → mallory's objects and mallory → alice's). Reading another user's object answers 404 (never 403:
existence is not leaked either).
"""
from __future__ import annotations

import datetime as dt
import io
import zipfile
from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from experiments import services as exp_services
from experiments.ingest import Point
from labbook.core.services import token_create
from notes import services as note_services
from notes.models import DailyLog, Paper, ReadingList
from runner.models import Job

pytestmark = pytest.mark.django_db

DAY = dt.date(2024, 1, 2)


@dataclass
class World:
    """One user's private objects; ``secret`` appears in every title and body so a leak is a substring search."""

    user: object
    secret: str
    ids: dict[str, object]


def build_world(user, secret: str) -> World:
    log = note_services.log_save(owner=user, date=DAY, body=f"{secret} day body", title=f"{secret} log title")
    note_services.log_save(owner=user, date=DAY, body=f"{secret} second version")  # leaves a revision
    note = note_services.note_create(owner=user, title=f"{secret} note title", body=f"{secret} note body")
    paper = note_services.paper_create(owner=user, title=f"{secret} paper title", authors=f"{secret} Author",
                                       year=2020)
    digest = note_services.digest_save(paper=paper, owner=user, body=f"{secret} digest body")
    rl = note_services.reading_list_create(owner=user, title=f"{secret} reading list")
    item = note_services.reading_list_item_add(reading_list=rl, paper=paper, note=f"{secret} item note")
    project = exp_services.project_get_or_create(owner=user, name=f"{secret}-project")
    run = exp_services.run_create(owner=user, project=project, name=f"{secret}-run", config={"lr": 0.1},
                                  tags=[f"{secret}-tag"])
    exp_services.metrics_ingest(run=run, points=[Point(f"{secret}/loss", i, 1.0 / (i + 1), 1.7e9 + i)
                                                 for i in range(5)])
    exp_services.artifact_store(run=run, path="model.pt", chunks=[f"{secret} weights".encode()])
    job_run = exp_services.run_create(owner=user, project=project, name=f"{secret}-job-run", config={})
    job = Job.objects.create(owner=user, run=job_run, kind="train", spec={"kind": "train"}, timeout_s=60)
    revision = log.revisions.order_by("pk").first()
    return World(user, secret, {
        "log": log.pk, "date": DAY.isoformat(), "username": user.get_username(), "note": note.pk, "paper": paper.pk,
        "digest": digest.pk, "rl": rl.pk, "item": item.pk, "run": run.pk, "job": job.pk, "job_run": job_run.pk,
        "project": project.pk, "revision": revision.pk, "key": f"{secret}/loss",
    })


@pytest.fixture(scope="module")
def worlds(django_db_setup, django_db_blocker, tmp_path_factory):
    """Built once for the module (committed), removed at the end; each test still runs in its own transaction, so
    a write that wrongly got through would be rolled back before the next test, and is caught by its own test."""
    from django.contrib.auth import get_user_model
    from django.test import override_settings

    with django_db_blocker.unblock(), override_settings(ARTIFACT_ROOT=tmp_path_factory.mktemp("artifacts")):
        users = get_user_model().objects
        alice = build_world(users.create_user("perm_alice", password="x-long-passphrase-1"), "ALICESECRET")
        mallory = build_world(users.create_user("perm_mallory", password="x-long-passphrase-2"), "MALLORYSECRET")
        yield {"alice": alice, "mallory": mallory}
        for world in (alice, mallory):
            Job.objects.filter(owner=world.user).delete()
            world.user.delete()


@pytest.fixture(params=["alice→mallory", "mallory→alice"])
def pair(request, worlds):
    """(viewer's world, victim's world)."""
    viewer, victim = request.param.split("→")
    return worlds[viewer], worlds[victim]


def api_for(user) -> APIClient:
    _, raw = token_create(user=user, name="perm-tests")
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return c


def page_client_for(client, user):
    client.force_login(user)
    return client


# --- reads of one object: 404 ------------------------------------------------------------------------------------

API_OBJECT_READS = [
    "/api/logs/{log}/", "/api/logs/{note}/", "/api/papers/{paper}/", "/api/papers/{paper}/digest/",
    "/api/reading-lists/{rl}/", "/api/projects/{project}/", "/api/runs/{run}/", "/api/runs/{run}/lineage/",
    "/api/runs/{run}/series/", "/api/runs/{run}/series/?keys={key}", "/api/runs/{run}/series/{key}/raw/",
    "/api/runs/{run}/artifacts/", "/api/runs/{run}/artifacts/model.pt", "/api/jobs/{job}/", "/api/jobs/{job}/log/",
    "/api/cost/runs/{run}/", "/api/cost/runs/{job_run}/",
]
PAGE_OBJECT_READS = [
    "/logs/notes/{note}/", "/logs/{date}/?user={username}", "/revisions/log/{log}/", "/papers/{paper}/",
    "/reading-lists/{rl}/", "/runs/{run}/", "/runs/{run}/series.csv", "/jobs/{job}/",
    "/stream/runs/{run}/", "/stream/jobs/{job}/",
]


@pytest.mark.parametrize("template", API_OBJECT_READS)
def test_api_reads_of_the_other_users_objects_are_not_found(pair, template):
    viewer, victim = pair
    response = api_for(viewer.user).get(template.format(**victim.ids))
    assert response.status_code == 404, (template, response.status_code)
    assert victim.secret not in response.content.decode(errors="replace")


@pytest.mark.parametrize("template", PAGE_OBJECT_READS)
def test_page_reads_of_the_other_users_objects_are_not_found(client, pair, template):
    viewer, victim = pair
    response = page_client_for(client, viewer.user).get(template.format(**victim.ids))
    assert response.status_code == 404, (template, response.status_code)
    assert victim.secret not in b"".join(response).decode(errors="replace") if response.streaming else \
        victim.secret not in response.content.decode(errors="replace")


def test_own_objects_are_readable_so_the_404s_above_mean_something(client, worlds):
    """The same routes answer 200 for the owner: a 404 above is a permission decision, not a broken route."""
    me = worlds["alice"]
    api = api_for(me.user)
    for template in API_OBJECT_READS:
        assert api.get(template.format(**me.ids)).status_code == 200, template
    page = page_client_for(client, me.user)
    for template in PAGE_OBJECT_READS:
        if template.startswith("/stream/"):
            continue  # an endless event stream; covered by tests/runner/test_streams.py
        assert page.get(template.format(**me.ids)).status_code in (200, 302), template


# --- writes to one object: 404 and nothing changes ----------------------------------------------------------------

API_WRITES = [
    ("patch", "/api/logs/{log}/", {"body": "pwned"}),
    ("delete", "/api/logs/{log}/", None),
    ("patch", "/api/logs/{note}/", {"body": "pwned"}),
    ("post", "/api/revisions/{revision}/restore/", {}),
    ("patch", "/api/papers/{paper}/", {"title": "pwned"}),
    ("delete", "/api/papers/{paper}/", None),
    ("put", "/api/papers/{paper}/digest/", {"body": "pwned"}),
    ("patch", "/api/reading-lists/{rl}/", {"title": "pwned"}),
    ("delete", "/api/reading-lists/{rl}/", None),
    ("post", "/api/reading-lists/{rl}/items/", {"paper": 1}),
    ("patch", "/api/reading-lists/{rl}/items/{item}/", {"note": "pwned"}),
    ("delete", "/api/reading-lists/{rl}/items/{item}/", None),
    ("post", "/api/reading-lists/{rl}/reorder/", {"item_ids": []}),
    ("patch", "/api/runs/{run}/", {"name": "pwned"}),
    ("delete", "/api/runs/{run}/", None),
    ("post", "/api/runs/{run}/metrics/", {"points": [{"key": "pwned", "step": 0, "value": 1.0}]}),
    ("post", "/api/runs/{run}/artifacts/", {}),
    ("put", "/api/runs/{run}/artifacts/pwned.txt", b"pwned"),
    ("delete", "/api/runs/{run}/artifacts/model.pt", None),
    ("post", "/api/jobs/{job}/cancel/", {}),
    ("post", "/api/jobs/{job}/retry/", {}),
    ("post", "/api/jobs/{job}/resume/", {}),
]
PAGE_WRITES = [
    ("/revisions/{revision}/restore/", {}),
    ("/papers/{paper}/edit/", {"title": "pwned"}),
    ("/runs/{run}/add-to-today/", {}),
    ("/jobs/{job}/cancel/", {}),
    ("/jobs/{job}/retry/", {}),
    ("/jobs/{job}/resume/", {}),
]


def snapshot(world: World) -> dict:
    from experiments.models import Artifact, MetricPoint, Run

    ids = world.ids
    return {
        "log": DailyLog.objects.filter(pk=ids["log"]).values_list("body", "title").first(),
        "note": DailyLog.objects.filter(pk=ids["note"]).values_list("body").first(),
        "paper": Paper.objects.filter(pk=ids["paper"]).values_list("title").first(),
        "digest": list(Paper.objects.get(pk=ids["paper"]).digests.values_list("owner_id", "body")),
        "rl": ReadingList.objects.filter(pk=ids["rl"]).values_list("title").first(),
        "items": list(ReadingList.objects.get(pk=ids["rl"]).items.values_list("pk", "note", "order")),
        "run": Run.objects.filter(pk=ids["run"]).values_list("name", "tags").first(),
        "points": MetricPoint.objects.filter(run_id=ids["run"]).count(),
        "artifacts": sorted(Artifact.objects.filter(run_id=ids["run"]).values_list("path", flat=True)),
        "job": Job.objects.filter(pk=ids["job"]).values_list("status", "cancel_requested").first(),
        "jobs": Job.objects.filter(owner=world.user).count(),
    }


@pytest.mark.parametrize("method,template,body", API_WRITES, ids=[f"{m} {t}" for m, t, _ in API_WRITES])
def test_api_writes_to_the_other_users_objects_are_not_found_and_change_nothing(pair, method, template, body):
    viewer, victim = pair
    before = snapshot(victim)
    api = api_for(viewer.user)
    url = template.format(**victim.ids)
    if isinstance(body, bytes):
        response = api.generic(method.upper(), url, body, content_type="application/octet-stream")
    else:
        response = getattr(api, method)(url, body, format="json")
    assert response.status_code == 404, (method, url, response.status_code, response.content[:200])
    assert snapshot(victim) == before


@pytest.mark.parametrize("template,body", PAGE_WRITES, ids=[t for t, _ in PAGE_WRITES])
def test_page_writes_to_the_other_users_objects_are_not_found_and_change_nothing(client, pair, template, body):
    viewer, victim = pair
    before = snapshot(victim)
    response = page_client_for(client, viewer.user).post(template.format(**victim.ids), body)
    assert response.status_code == 404, (template, response.status_code)
    assert snapshot(victim) == before


def test_metric_keys_of_another_users_run_cannot_be_written_through_a_run_id_guess(pair):
    """Ingestion checks the run's owner before reading the body: a guessed run id stores nothing."""
    from experiments.models import MetricPoint

    viewer, victim = pair
    before = MetricPoint.objects.filter(run_id=victim.ids["run"]).count()
    api = api_for(viewer.user)
    for pk in range(victim.ids["run"] - 2, victim.ids["run"] + 3):
        api.post(f"/api/runs/{pk}/metrics/", {"points": [{"key": "x", "step": 99, "value": 1}]}, format="json")
    assert MetricPoint.objects.filter(run_id=victim.ids["run"]).count() == before


# --- lists, search, exports: 200 but none of the other user's objects ----------------------------------------------
# Queries use the secret minus its last letter ({prefix}) where a page echoes the query back.

API_LISTS = [
    "/api/logs/", "/api/logs/?kind=note", "/api/revisions/", "/api/papers/", "/api/digests/",
    "/api/reading-lists/", "/api/tags/", "/api/projects/", "/api/runs/", "/api/jobs/", "/api/jobs/?status=active",
    "/api/search/?q={secret}", "/api/search/?q={prefix}", "/api/search/?q=body", "/api/search/?q=title&kind=paper",
    "/api/runs/?q=name%20~%20%22{prefix}%22", "/api/papers/export.bib", "/api/export/", "/api/digest-template/",
]
PAGE_LISTS = [
    "/today/", "/logs/", "/papers/", "/reading-lists/", "/search/?q={prefix}", "/search/?q=title", "/runs/",
    "/runs/?q=name%20~%20%22{prefix}%22", "/runs/export.csv", "/runs/compare/?ids={run},{job_run}", "/jobs/",
    "/export/",
]


def _text_of(response) -> str:
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    if raw[:2] == b"PK":  # a zip export: look inside every file
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            return "\n".join(zf.read(n).decode(errors="replace") + n for n in zf.namelist())
    return raw.decode(errors="replace")


@pytest.mark.parametrize("template", API_LISTS)
def test_api_lists_searches_and_exports_never_show_the_other_users_objects(pair, template):
    viewer, victim = pair
    response = api_for(viewer.user).get(template.format(secret=victim.secret, prefix=victim.secret[:-1], **victim.ids))
    assert response.status_code in (200, 400), (template, response.status_code)
    assert victim.secret not in _text_of(response), template
    assert victim.secret.lower() not in _text_of(response).lower(), template


@pytest.mark.parametrize("template", PAGE_LISTS)
def test_pages_lists_searches_and_exports_never_show_the_other_users_objects(client, pair, template):
    viewer, victim = pair
    response = page_client_for(client, viewer.user).get(template.format(secret=victim.secret, prefix=victim.secret[:-1], **victim.ids))
    assert response.status_code == 200, (template, response.status_code)
    assert victim.secret.lower() not in _text_of(response).lower(), template


def test_own_lists_and_exports_do_show_own_objects(client, worlds):
    """The positive control: the same listings contain the viewer's own secret."""
    me = worlds["alice"]
    api = api_for(me.user)
    for template in ("/api/logs/", "/api/papers/", "/api/runs/", "/api/search/?q={secret}", "/api/papers/export.bib",
                     "/api/export/"):
        assert me.secret in _text_of(api.get(template.format(secret=me.secret))), template
    page = page_client_for(client, me.user)
    for template in ("/papers/", "/runs/", "/runs/export.csv", "/export/"):
        assert me.secret.lower() in _text_of(page.get(template)).lower(), template


# --- links between users: backlinks and [[links]] leak no titles ---------------------------------------------------

def test_wikilinks_to_the_other_users_objects_render_without_their_titles(client, worlds):
    alice, mallory = worlds["alice"], worlds["mallory"]
    body = (f"see [[run:{mallory.ids['run']}]] and [[paper:{mallory.ids['paper']}]] and [[log:{DAY.isoformat()}]]"
            f" and [[run:{alice.ids['run']}]]")
    log = note_services.log_save(owner=alice.user, date=dt.date(2024, 2, 1), body=body)
    page = page_client_for(client, alice.user).get(log.get_absolute_url()).content.decode()
    assert "MALLORYSECRET" not in page
    assert "ALICESECRET-run" in page  # own links do resolve
    rendered = api_for(alice.user).post("/api/notes/render/", {"body": body}, format="json")
    assert rendered.status_code == 200 and "MALLORYSECRET" not in rendered.content.decode()


def test_backlinks_from_the_other_users_private_notes_are_invisible(client, worlds):
    alice, mallory = worlds["alice"], worlds["mallory"]
    # Mallory's private log and digest link to Alice's run, paper and log day.
    note_services.log_save(owner=mallory.user, date=dt.date(2024, 3, 1), title="MALLORYSECRET backlink log",
                           body=f"[[run:{alice.ids['run']}]] [[paper:{alice.ids['paper']}]]")
    page = page_client_for(client, alice.user)
    for url in (f"/runs/{alice.ids['run']}/", f"/papers/{alice.ids['paper']}/", f"/logs/{DAY.isoformat()}/"):
        response = page.get(url)
        assert response.status_code == 200
        assert "MALLORYSECRET" not in response.content.decode(), url


def test_search_does_not_find_the_other_users_words_at_all(worlds):
    alice = worlds["alice"]
    for words in ("MALLORYSECRET", "digest body", "paper title", "Author"):
        found = api_for(alice.user).get("/api/search/", {"q": words}).json()["results"]
        assert all("MALLORYSECRET" not in str(hit) for hit in found), words
