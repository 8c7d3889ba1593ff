"""REST API: logs, papers, digests, reading lists, tags, search, import, export; filtering, pagination, isolation."""
from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from notes import services
from notes.models import DailyLog, Paper

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_client(other_user):
    c = APIClient()
    c.force_authenticate(other_user)
    return c


def test_anonymous_is_refused(client):
    for url in ["/api/logs/", "/api/papers/", "/api/search/?q=x", "/api/export/", "/api/reading-lists/"]:
        assert client.get(url).status_code in (401, 403)


def test_create_and_autosave_log_by_date(api_client, user):
    r = api_client.put("/api/logs/by-date/2021-05-12/", {"body": "量化 $x^2$"}, format="json")
    assert r.status_code == 200, r.content
    assert "<math" in r.json()["body_html"]
    r = api_client.put("/api/logs/by-date/2021-05-12/", {"body": "second\n\n  trailing  "}, format="json")
    assert r.json()["body"] == "second\n\n  trailing  "  # verbatim, whitespace kept
    assert DailyLog.objects.filter(owner=user).count() == 1
    assert api_client.get("/api/revisions/", {"log": r.json()["id"]}).json()["count"] == 2


def test_bad_input_names_the_field(api_client):
    r = api_client.put("/api/logs/by-date/2021-13-45/", {"body": "x"}, format="json")
    assert r.status_code == 400 and "date" in str(r.json())
    r = api_client.post("/api/logs/", {"date": "2021-05-12", "end_date": "2021-05-01", "body": "x"}, format="json")
    assert r.status_code == 400 and "end_date" in str(r.json())
    r = api_client.post("/api/papers/", {"title": ""}, format="json")
    assert r.status_code == 400 and "title" in str(r.json())
    r = api_client.get("/api/search/")
    assert r.status_code == 400 and "q" in str(r.json())


def test_oversized_import_is_413(api_client):
    big = SimpleUploadedFile("big.md", b"a" * (10 * 1024 * 1024 + 1), content_type="text/markdown")
    r = api_client.post("/api/import/markdown/", {"file": big}, format="multipart")
    assert r.status_code == 413


def test_log_list_filters_and_paginates(api_client, user):
    for day in range(1, 8):
        services.log_save(owner=user, date=dt.date(2021, 5, day), body=f"day {day}", tags=["odd"] if day % 2 else [])
    r = api_client.get("/api/logs/", {"date_from": "2021-05-03", "date_to": "2021-05-06", "limit": 2})
    data = r.json()
    assert data["count"] == 4 and len(data["results"]) == 2 and data["next"]
    assert [x["date"] for x in data["results"]] == ["2021-05-06", "2021-05-05"]
    assert api_client.get("/api/logs/", {"tag": "odd"}).json()["count"] == 4
    assert api_client.get("/api/logs/", {"q": "day 3"}).json()["count"] == 1


def test_other_users_objects_are_404_and_never_listed(api_client, other_client, other_user):
    log = services.log_save(owner=other_user, date=dt.date(2021, 5, 12), body="mallory secret")
    paper = services.paper_create(owner=other_user, title="Mallory Paper")
    assert api_client.get(f"/api/logs/{log.pk}/").status_code == 404
    assert api_client.patch(f"/api/logs/{log.pk}/", {"body": "x"}, format="json").status_code == 404
    assert api_client.delete(f"/api/papers/{paper.pk}/").status_code == 404
    assert api_client.get("/api/logs/").json()["count"] == 0
    assert api_client.get("/api/papers/").json()["count"] == 0
    # Shared: readable, still not writable.
    services.paper_update(paper=paper, shared=True)
    assert api_client.get(f"/api/papers/{paper.pk}/").status_code == 200
    assert api_client.patch(f"/api/papers/{paper.pk}/", {"title": "x"}, format="json").status_code == 404


def test_papers_crud_filter_and_sort(api_client, user):
    for title, year, venue, status in [("B paper", 2020, "ICLR", "read"), ("A paper", 2019, "CVPR", "to_read"),
                                        ("C paper", 2021, "ICLR", "reading")]:
        r = api_client.post("/api/papers/", {"title": title, "year": year, "venue": venue, "status": status,
                                             "tags": ["quant"] if venue == "ICLR" else []}, format="json")
        assert r.status_code == 201, r.content
    titles = lambda params: [p["title"] for p in api_client.get("/api/papers/", params).json()["results"]]  # noqa: E731
    assert titles({"ordering": "title"}) == ["A paper", "B paper", "C paper"]
    assert titles({"ordering": "-year"}) == ["C paper", "B paper", "A paper"]
    assert titles({"venue": "ICLR", "ordering": "year"}) == ["B paper", "C paper"]
    assert titles({"status": "read"}) == ["B paper"]
    assert titles({"tag": "quant", "year": 2021}) == ["C paper"]
    pk = Paper.objects.get(title="A paper").pk
    r = api_client.patch(f"/api/papers/{pk}/", {"status": "read"}, format="json")
    assert r.json()["status"] == "read" and r.json()["date_read"]


def test_digest_starts_from_editable_template(api_client, user):
    pk = api_client.post("/api/papers/", {"title": "LSQ"}, format="json").json()["id"]
    assert "🔑 Key:" in api_client.get(f"/api/papers/{pk}/digest/").json()["body"]
    api_client.put("/api/digest-template/", {"body": "## Summary\n"}, format="json")
    pk2 = api_client.post("/api/papers/", {"title": "HAQ"}, format="json").json()["id"]
    assert api_client.get(f"/api/papers/{pk2}/digest/").json()["body"] == "## Summary\n"
    r = api_client.put(f"/api/papers/{pk}/digest/", {"body": "* 🔑 Key: learn the step $s$"}, format="json")
    assert "<math" in r.json()["body_html"]
    assert api_client.get("/api/digests/", {"paper": pk}).json()["count"] == 1


def test_reading_list_items_and_reorder(api_client, user):
    rl = api_client.post("/api/reading-lists/", {"title": "Quantization"}, format="json").json()
    papers = [services.paper_create(owner=user, title=f"P{i}") for i in range(3)]
    items = [api_client.post(f"/api/reading-lists/{rl['id']}/items/", {"paper": p.pk, "note": f"n{i}"},
                             format="json").json() for i, p in enumerate(papers)]
    new_order = [items[2]["id"], items[0]["id"], items[1]["id"]]
    r = api_client.post(f"/api/reading-lists/{rl['id']}/reorder/", {"item_ids": new_order}, format="json")
    assert [i["id"] for i in r.json()["items"]] == new_order
    bad = api_client.post(f"/api/reading-lists/{rl['id']}/reorder/", {"item_ids": new_order[:2]}, format="json")
    assert bad.status_code == 400 and "item_ids" in str(bad.json())
    api_client.patch(f"/api/reading-lists/{rl['id']}/items/{items[0]['id']}/", {"note": "read first"}, format="json")
    assert api_client.delete(f"/api/reading-lists/{rl['id']}/items/{items[1]['id']}/").status_code == 204
    got = api_client.get(f"/api/reading-lists/{rl['id']}/").json()
    assert [(i["paper_title"], i["note"]) for i in got["items"]] == [("P2", "n2"), ("P0", "read first")]


def test_search_api(api_client, user):
    services.log_save(owner=user, date=dt.date(2021, 5, 12), body="结构化剪枝实验")
    data = api_client.get("/api/search/", {"q": "剪枝"}).json()
    assert data["count"] == 1 and "<mark>剪枝</mark>" in data["results"][0]["snippet"]
    assert api_client.get("/api/search/", {"q": "剪枝", "kind": "paper"}).json()["count"] == 0


def test_render_endpoint_sanitises(api_client):
    r = api_client.post("/api/notes/render/", {"body": "$a$ <script>x</script> [[run:999]]"}, format="json")
    html = r.json()["html"]
    assert "<math" in html and "<script" not in html and "wikilink missing" in html


def test_import_and_export_api(api_client, user, journal_text, paper_stack_text):
    r = api_client.post("/api/import/markdown/", {"text": journal_text, "filename": "journal.md"}, format="json")
    assert r.status_code == 201 and r.json()["created"]["logs"] == 15 and r.json()["warnings"]
    upload = SimpleUploadedFile("paper_stack.md", paper_stack_text.encode(), content_type="text/markdown")
    r = api_client.post("/api/import/markdown/", {"file": upload}, format="multipart")
    assert r.json()["mode"] == "paper_stack" and r.json()["created"]["papers"] == 6
    again = api_client.post("/api/import/markdown/", {"text": journal_text}, format="json").json()
    assert sum(again["created"].values()) == 0
    r = api_client.post("/api/import/bibtex/", {"text": "@misc{k1, title={A Title}, year={2020}}"}, format="json")
    assert r.json()["created"]["papers"] == 1
    r = api_client.get("/api/export/")
    assert r["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    log = DailyLog.objects.get(owner=user, date=dt.date(2021, 5, 12))
    assert archive.read("logs/2021-05-12.md") == log.body.encode()
    assert b"@misc{k1" in api_client.get("/api/papers/export.bib").content


def test_import_needs_file_or_text(api_client):
    r = api_client.post("/api/import/markdown/", {}, format="json")
    assert r.status_code == 400 and "file" in str(r.json())


def test_tags_list(api_client, user):
    services.log_save(owner=user, date=dt.date(2021, 5, 12), body="x", tags=["prune", "量化"])
    assert {t["name"] for t in api_client.get("/api/tags/").json()["results"]} == {"prune", "量化"}


def test_schema_covers_notes_endpoints(api_client):
    r = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert r.status_code == 200
    text = r.content.decode()
    for path in ["/api/logs/", "/api/papers/{id}/digest/", "/api/reading-lists/{id}/reorder/", "/api/search/",
                 "/api/import/markdown/", "/api/export/"]:
        assert path in text


def test_autosave_can_share_and_tag_a_log(api_client, other_client, user):
    r = api_client.put("/api/logs/by-date/2021-05-12/", {"body": "共享的笔记", "shared": True, "tags": ["prune"]},
                       format="json")
    assert r.json()["shared"] is True and r.json()["tags"] == ["prune"]
    assert other_client.get(f"/api/logs/{r.json()['id']}/").json()["body"] == "共享的笔记"


def test_stale_autosave_is_refused_with_409_and_its_text_kept(api_client, user, make_run):
    first = api_client.put("/api/logs/by-date/2021-05-12/", {"body": "v1"}, format="json").json()
    # Meanwhile, elsewhere: a second tab saves a newer text.
    newer = api_client.put("/api/logs/by-date/2021-05-12/", {"body": "v1 + other tab",
                                                              "base_version": first["updated_at"]}, format="json")
    assert newer.status_code == 200
    stale = api_client.put("/api/logs/by-date/2021-05-12/", {"body": "v1 + stale tab",
                                                              "base_version": first["updated_at"]}, format="json")
    assert stale.status_code == 409
    assert stale.json()["body"] == "v1 + other tab" and stale.json()["version"]
    log = DailyLog.objects.get(owner=user, date=dt.date(2021, 5, 12))
    assert log.body == "v1 + other tab"
    assert log.revisions.filter(body="v1 + stale tab").exists()  # nothing typed is lost
    # "Keep mine": resend on the version the conflict reported.
    mine = api_client.put("/api/logs/by-date/2021-05-12/", {"body": "v1 + stale tab",
                                                             "base_version": stale.json()["version"]}, format="json")
    assert mine.status_code == 200 and mine.json()["body"] == "v1 + stale tab"


def test_stale_digest_save_is_refused(api_client, user):
    pk = api_client.post("/api/papers/", {"title": "LSQ"}, format="json").json()["id"]
    d = api_client.get(f"/api/papers/{pk}/digest/").json()
    api_client.put(f"/api/papers/{pk}/digest/", {"body": "a", "base_version": d["updated_at"]}, format="json")
    r = api_client.put(f"/api/papers/{pk}/digest/", {"body": "b", "base_version": d["updated_at"]}, format="json")
    assert r.status_code == 409 and r.json()["body"] == "a"
