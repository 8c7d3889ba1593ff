from __future__ import annotations

import datetime as dt

import pytest

from notes import services

pytestmark = pytest.mark.django_db

MODELS = ["tag", "dailylog", "paper", "digest", "digesttemplate", "readinglist", "readinglistitem", "link", "revision",
          "importrecord", "importedchunk"]


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser(username="root", password="a long admin passphrase")
    client.force_login(admin)
    services.log_save(owner=admin, date=dt.date(2021, 5, 12), body="[[run:1]] 剪枝", tags=["prune"])
    paper = services.paper_create(owner=admin, title="LSQ")
    services.digest_save(paper=paper, owner=admin, body="x")
    rl = services.reading_list_create(owner=admin, title="L")
    services.reading_list_item_add(reading_list=rl, paper=paper)
    services.digest_template_get(owner=admin)
    return client


@pytest.mark.parametrize("model", MODELS)
def test_admin_changelist_search_and_change_pages_load(admin_client, model):
    assert admin_client.get(f"/admin/notes/{model}/").status_code == 200
    assert admin_client.get(f"/admin/notes/{model}/?q=x").status_code == 200


def test_admin_log_edit_goes_through_the_service(admin_client):
    from notes.models import DailyLog

    log = DailyLog.objects.get()
    r = admin_client.post(f"/admin/notes/dailylog/{log.pk}/change/", {
        "owner": log.owner_id, "kind": "day", "date": "2021-05-12", "end_date": "", "title": "", "heading": "",
        "body": "edited $x$", "shared": "", "created_at_0": "2021-05-12", "created_at_1": "10:00:00",
    })
    assert r.status_code == 302, r.content.decode()[:2000]
    log.refresh_from_db()
    assert "<math" in log.body_html and log.revisions.count() == 2
