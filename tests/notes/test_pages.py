"""Server-rendered pages: Today, timeline, log, papers, reading lists, search, import, add-to-today, revisions."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from notes import services
from notes.models import DailyLog, Paper, Revision

pytestmark = pytest.mark.django_db


def test_pages_require_login(client):
    for url in ["/today/", "/logs/", "/logs/2021-05-12/", "/papers/", "/reading-lists/", "/search/", "/import/"]:
        r = client.get(url)
        assert r.status_code == 302 and "/login/" in r["Location"]


def test_today_shows_editor_with_todays_log_and_runs(auth_client, user, make_run):
    run = make_run(user, name="res20-prune")
    services.log_save(owner=user, date=timezone.localdate(), body="今天 $x$")
    r = auth_client.get("/today/")
    html = r.content.decode()
    assert r.status_code == 200
    assert 'class="notes-textarea"' in html and "今天 $x$" in html
    assert f"/api/logs/by-date/{timezone.localdate().isoformat()}/" in html
    assert "res20-prune" in html and f"[[run:{run.pk}]]" in html
    assert "<math" in html  # server-rendered preview on load


def test_timeline_calendar_marks_days_with_logs(auth_client, user):
    services.log_save(owner=user, date=dt.date(2021, 5, 8), end_date=dt.date(2021, 5, 11), body="读代码")
    r = auth_client.get("/logs/?month=2021-05")
    html = r.content.decode()
    assert "May 2021" in html and "读代码" in html
    assert html.count("has-log") == 4  # the range covers four days
    assert "?month=2021-04" in html and "?month=2021-06" in html


def test_log_page_shows_log_backlinks_and_404s_others(auth_client, user, other_user):
    services.log_save(owner=user, date=dt.date(2021, 5, 8), body="target")
    services.log_save(owner=user, date=dt.date(2021, 5, 12), body="see [[log:2021-05-08]]")
    html = auth_client.get("/logs/2021-05-08/").content.decode()
    assert "Backlinks" in html and "/logs/2021-05-12/" in html
    services.log_save(owner=other_user, date=dt.date(2021, 5, 9), body="mallory private")
    assert auth_client.get("/logs/2021-05-09/?user=mallory").status_code == 404
    assert "mallory private" not in auth_client.get("/logs/2021-05-09/").content.decode()
    assert auth_client.get("/logs/not-a-date/").status_code == 400


def test_paper_list_filters_and_sorts(auth_client, user):
    services.paper_create(owner=user, title="Zeta", year=2019, venue="CVPR", status="read", tags=["quant"])
    services.paper_create(owner=user, title="Alpha", year=2021, venue="ICLR")
    html = auth_client.get("/papers/?sort=title").content.decode()
    assert html.index("Alpha") < html.index("Zeta")
    html = auth_client.get("/papers/?sort=-title").content.decode()
    assert html.index("Zeta") < html.index("Alpha")
    html = auth_client.get("/papers/?status=read").content.decode()
    assert ">Zeta<" in html and ">Alpha<" not in html
    assert ">Alpha<" in auth_client.get("/papers/?year=2021&venue=ICLR").content.decode()
    assert ">Alpha<" not in auth_client.get("/papers/?tag=quant").content.decode()


def test_paper_page_digest_editor_linked_runs_and_backlinks(auth_client, user, make_run):
    paper = services.paper_create(owner=user, title="Learned Step Size Quantization")
    run = make_run(user, name="lsq-run")
    services.digest_save(paper=paper, owner=user, body=f"tried in [[run:{run.pk}]]")
    services.log_save(owner=user, date=dt.date(2021, 5, 12), body=f"read [[paper:{paper.slug}]]")
    html = auth_client.get(f"/papers/{paper.pk}/").content.decode()
    assert "notes-textarea" in html and f"/api/papers/{paper.pk}/digest/" in html
    assert "lsq-run" in html and "/logs/2021-05-12/" in html


def test_paper_edit_form(auth_client, user):
    paper = services.paper_create(owner=user, title="T")
    r = auth_client.post(f"/papers/{paper.pk}/edit/", {"title": "T2", "year": "20x"})
    assert r.status_code == 302
    paper.refresh_from_db()
    assert paper.title == "T"  # bad year: nothing saved, error shown
    auth_client.post(f"/papers/{paper.pk}/edit/", {"title": "T2", "year": "2020", "status": "reading", "tags": "a, b"})
    paper.refresh_from_db()
    assert (paper.title, paper.year, paper.status) == ("T2", 2020, "reading")
    assert sorted(paper.tags.values_list("name", flat=True)) == ["a", "b"]


def test_reading_list_pages(auth_client, user, other_user):
    r = auth_client.post("/reading-lists/", {"title": "Quant"})
    url = r["Location"]
    paper = services.paper_create(owner=user, title="LSQ")
    auth_client.post(url, {"paper": paper.pk, "note": "first"})
    html = auth_client.get(url).content.decode()
    assert 'draggable="true"' in html and "notes-move" in html and "LSQ" in html and "reorder" in html
    from django.test import Client

    other = Client()
    other.force_login(other_user)
    assert other.get(url).status_code == 404


def test_search_page_highlights(auth_client, user):
    services.log_save(owner=user, date=dt.date(2021, 5, 12), body="点云分割实验")
    html = auth_client.get("/search/?q=点云").content.decode()
    assert "<mark>点云</mark>" in html and "/logs/2021-05-12/" in html


def test_import_page_upload_reports_counts_and_warnings(auth_client, user, journal_text):
    upload = SimpleUploadedFile("journal.md", journal_text.encode())
    r = auth_client.post("/import/", {"file": upload, "format": "auto"})
    html = r.content.decode()
    assert r.status_code == 200 and "created 15 logs" in html and "20202-10-28" in html
    assert "Earlier imports" in auth_client.get("/import/").content.decode()
    r = auth_client.post("/import/", {"format": "auto"})
    assert r.status_code == 400


def test_add_to_today_from_run_page_button(auth_client, user, make_run):
    run = make_run(user, name="r42")
    page = auth_client.get(f"/runs/{run.pk}/").content.decode()
    assert reverse("run-add-to-today", args=[run.pk]) in page and 'data-testid="add-to-today"' in page
    r = auth_client.post(reverse("run-add-to-today", args=[run.pk]))
    assert r.status_code == 302 and r["Location"] == f"/runs/{run.pk}/"
    log = DailyLog.objects.get(owner=user, date=timezone.localdate())
    assert f"[[run:{run.pk}]]" in log.body


def test_backlinks_panel_has_no_button_for_a_run_of_someone_else(user, other_user, make_run, rf: RequestFactory):
    run = make_run(other_user)
    request = rf.get("/")
    request.user = user
    panel = render_to_string("notes/_backlinks.html", {"obj": run, "request": request})
    assert "add-to-today" not in panel and "Backlinks" in panel


def test_add_to_today_refuses_others_runs(auth_client, other_user, make_run):
    run = make_run(other_user)
    assert auth_client.post(reverse("run-add-to-today", args=[run.pk])).status_code == 404


def test_revisions_page_and_restore(auth_client, user):
    services.log_save(owner=user, date=dt.date(2021, 5, 12), body="v1")
    log = services.log_save(owner=user, date=dt.date(2021, 5, 12), body="v2")
    html = auth_client.get(f"/revisions/log/{log.pk}/").content.decode()
    assert "v1" in html and "v2" in html
    first = Revision.objects.filter(log=log).order_by("id").first()
    auth_client.post(f"/revisions/{first.pk}/restore/")
    log.refresh_from_db()
    assert log.body == "v1"


def test_export_page_downloads_zip(auth_client, user):
    services.paper_create(owner=user, title="P")
    r = auth_client.get("/export/")
    assert r["Content-Type"] == "application/zip" and r.content[:2] == b"PK"
    assert Paper.objects.count() == 1


def test_day_inside_a_range_opens_the_range_log(auth_client, user):
    services.log_save(owner=user, date=dt.date(2021, 5, 8), end_date=dt.date(2021, 5, 11), body="读代码")
    r = auth_client.get("/logs/2021-05-10/")
    assert r.status_code == 302 and r["Location"] == "/logs/2021-05-08/"


def test_editor_shows_sharing_and_tags(auth_client, user):
    services.log_save(owner=user, date=dt.date(2021, 5, 12), body="x", tags=["prune", "w4a4"], shared=True)
    html = auth_client.get("/logs/2021-05-12/").content.decode()
    assert 'class="notes-shared" checked' in html and 'value="prune, w4a4"' in html


def test_note_page_edits_title_through_the_api(auth_client, user):
    note = services.note_create(owner=user, title="Done", body="* x")
    html = auth_client.get(f"/logs/notes/{note.pk}/").content.decode()
    assert 'class="notes-title" value="Done"' in html and f"/api/logs/{note.pk}/" in html
    r = auth_client.patch(f"/api/logs/{note.pk}/", {"body": "* x\n* y", "title": "Done 2021"},
                          content_type="application/json")
    assert r.status_code == 200
    note.refresh_from_db()
    assert (note.title, note.body) == ("Done 2021", "* x\n* y")
