"""[[links]] extracted on save, backlinks, and no leak of others' titles."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from notes import selectors, services
from notes.models import Link, Revision

pytestmark = pytest.mark.django_db


def test_saving_extracts_links_into_the_link_table(user, make_run):
    run = make_run(user)
    paper = services.paper_create(owner=user, title="Learned Step Size Quantization")
    log = services.log_save(owner=user, date=dt.date(2021, 5, 12),
                            body=f"[[run:{run.pk}]] [[paper:{paper.slug}]] [[log:2021-5-8]]")
    assert set(Link.objects.filter(source_log=log).values_list("target_kind", "target_key")) == {
        ("run", str(run.pk)), ("paper", str(paper.pk)), ("log", "2021-05-08")}
    services.log_save(owner=user, date=dt.date(2021, 5, 12), body="no links now")
    assert not Link.objects.filter(source_log=log).exists()


def test_backlinks_of_run_paper_and_log(user, make_run):
    run = make_run(user)
    paper = services.paper_create(owner=user, title="HAQ")
    target_log = services.log_save(owner=user, date=dt.date(2021, 5, 8), body="x")
    source = services.log_save(owner=user, date=dt.date(2021, 5, 12),
                               body=f"[[run:{run.pk}]] [[paper:{paper.pk}]] [[log:2021-05-08]]")
    digest = services.digest_save(paper=services.paper_create(owner=user, title="Other"), owner=user,
                                  body=f"compare [[paper:{paper.slug}]]")
    assert [b.url for b in selectors.backlinks_for(run, user)] == [source.get_absolute_url()]
    assert {b.url for b in selectors.backlinks_for(paper, user)} == {source.get_absolute_url(),
                                                                       digest.get_absolute_url()}
    assert [b.url for b in selectors.backlinks_for(target_log, user)] == [source.get_absolute_url()]


def test_links_render_with_titles_for_the_owner(user, make_run):
    run = make_run(user, name="res20-w4a4")
    log = services.log_save(owner=user, date=dt.date(2021, 5, 12), body=f"see [[run:{run.pk}]]")
    html = selectors.rendered_html(log, user)
    assert f'href="/runs/{run.pk}/"' in html and "res20-w4a4" in html


def test_shared_log_never_leaks_titles_of_private_targets(user, other_user, make_run):
    run = make_run(user, name="secret-run-name")
    paper = services.paper_create(owner=user, title="Secret Paper Title")
    log = services.log_save(owner=user, date=dt.date(2021, 5, 12), shared=True,
                            body=f"[[run:{run.pk}]] [[paper:{paper.pk}]] [[log:2021-05-01]]")
    html = selectors.rendered_html(log, other_user)
    assert "secret-run-name" not in html and "Secret Paper Title" not in html
    assert f"/runs/{run.pk}/" not in html and "wikilink missing" in html


def test_backlinks_hide_sources_the_viewer_cannot_see(user, other_user, make_run):
    theirs = make_run(other_user)
    services.log_save(owner=user, date=dt.date(2021, 5, 12), body=f"[[run:{theirs.pk}]]")
    # other_user sees nothing of alice's private log on their own run...
    assert selectors.backlinks_for(theirs, other_user) == []
    # ...until alice shares it.
    services.log_save(owner=user, date=dt.date(2021, 5, 12), body=f"[[run:{theirs.pk}]]", shared=True)
    assert len(selectors.backlinks_for(theirs, other_user)) == 1


def test_add_run_to_today_appends_a_link_once(user, make_run):
    run = make_run(user, name="r1")
    services.log_save(owner=user, date=timezone.localdate(), body="morning notes")
    services.log_add_run_to_today(owner=user, run=run)
    log = services.log_add_run_to_today(owner=user, run=run)
    assert log.body.startswith("morning notes\n\n") and log.body.count(f"[[run:{run.pk}]]") == 1
    assert selectors.backlinks_for(run, user)[0].url == log.get_absolute_url()


def test_every_save_keeps_a_revision_and_restore_brings_text_back(user):
    day = dt.date(2021, 5, 12)
    services.log_save(owner=user, date=day, body="first")
    log = services.log_save(owner=user, date=day, body="second")
    first = Revision.objects.filter(log=log).order_by("created_at", "id").first()
    assert list(Revision.objects.filter(log=log).order_by("id").values_list("body", flat=True)) == ["first", "second"]
    restored = services.revision_restore(revision=first)
    assert restored.body == "first" and Revision.objects.filter(log=log).count() == 3
