"""Browser tests (real uvicorn + headless Chromium) of the runs table, a run page and the compare page."""
from __future__ import annotations

import re

import pytest

from tests.conftest import wait_until
from tests.experiments.factories import log, make_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def artifact_root(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()
    return settings.ARTIFACT_ROOT


def names_in_table(page):
    return page.locator("#runs-table tbody tr td:nth-child(2)").all_inner_texts()


def test_runs_table_filters_sorts_and_reports_query_errors(artifact_root, asgi_server, page_factory, user):
    for name, lr, acc in [("r-small", 0.001, 0.91), ("r-big", 0.1, 0.95), ("r-mid", 0.01, 0.80)]:
        log(make_run(user, name=name, config={"lr": lr}, tags=["w4a4"] if lr < 0.05 else []), "acc", [0.1, acc])
    page = page_factory(asgi_server, user)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("/runs/")
    assert sorted(names_in_table(page)) == ["r-big", "r-mid", "r-small"]
    assert not errors, errors

    page.fill("#q", 'params.lr < 0.05 and tag = "w4a4"')
    page.click("#runs-query button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/\?q="))
    assert sorted(names_in_table(page)) == ["r-mid", "r-small"]

    page.goto("/runs/")
    page.click("th[data-sort-key='metrics.acc']")
    page.wait_for_url(re.compile(r"sort=metrics\.acc"))
    assert names_in_table(page) == ["r-mid", "r-small", "r-big"]
    page.click("th[data-sort-key='metrics.acc']")
    page.wait_for_url(re.compile(r"sort=-metrics\.acc"))
    assert names_in_table(page) == ["r-big", "r-small", "r-mid"]

    page.goto("/runs/?q=params.lr+%3C")
    assert "expected a value after '<' at column 12" in page.inner_text("#query-error")


def test_column_chooser_persists_in_local_storage(artifact_root, asgi_server, page_factory, user):
    make_run(user, name="a", config={"lr": 0.1, "bits": 4})
    make_run(user, name="b", config={"lr": 0.2, "bits": 4})
    page = page_factory(asgi_server, user)
    page.goto("/runs/")
    header = page.locator("th[data-col='params.bits']")
    assert not header.is_visible()  # same in every run: hidden by default
    page.click("#column-chooser summary")
    page.check("#column-chooser input[data-col='params.bits']")
    page.reload()
    assert page.locator("th[data-col='params.bits']").is_visible()


def test_run_page_draws_a_chart_per_metric_and_appends_live_points(artifact_root, asgi_server, page_factory, user):
    parent = make_run(user, name="trained", kind="train")
    run = make_run(user, name="pruned", kind="prune", parent=parent, config={"sparsity": 0.5})
    make_run(user, name="quantized", kind="quantize", parent=run)
    log(run, "loss", [1.0, 0.5, 0.25])
    log(run, "acc", [0.5, 0.7, 0.8])
    page = page_factory(asgi_server, user)
    page.goto(f"/runs/{run.pk}/")
    page.wait_for_selector(".chart[data-key='loss'] canvas")
    assert page.locator(".chart canvas").count() == 2
    assert "sparsity: 0.5" in page.inner_text("#config")
    lineage = page.inner_text("#lineage")
    assert "trained" in lineage and "quantized" in lineage
    page.evaluate(
        """(run) => document.dispatchEvent(new CustomEvent("labbook:metrics", {detail: {run: run, points: [
             {key: "new_metric", step: 0, value: 1.5, wall_time: 1}]}}))""", run.pk)
    page.wait_for_selector(".chart[data-key='new_metric'] canvas")

    # notes and tags are edited in place and the Markdown is rendered
    page.click("#edit-notes")
    page.fill("#notes-text", "# Pruned\n\nKept **50%** of the channels.")
    page.fill("#tags-text", "pruned, w4a4")
    page.click("#notes-form button[type=submit]")
    page.wait_for_selector("#notes-view .markdown")
    assert "Kept" in page.inner_text("#notes-view")
    run.refresh_from_db()
    assert run.notes.startswith("# Pruned") and run.tags == ["pruned", "w4a4"]


def test_compare_page_shows_differences_and_the_pareto_front(artifact_root, asgi_server, page_factory, user):
    specs = [("fp32", 32, 0.95, 4e8), ("w8a8", 8, 0.94, 1e8), ("w4a4", 4, 0.90, 5e7), ("bad", 4, 0.80, 9e8)]
    runs = []
    for name, bits, acc, macs in specs:
        r = make_run(user, name=name, config={"bits": bits, "lr": 0.1})
        log(r, "acc", [acc])
        log(r, "cost/macs", [macs])
        runs.append(r)
    page = page_factory(asgi_server, user)
    page.goto("/runs/compare/?ids=" + ",".join(str(r.pk) for r in runs))
    assert page.locator("#diff-table tr.differs td:first-child").all_inner_texts() == ["bits"]
    page.check("#only-diff")
    assert not page.locator("#diff-table tr.same").first.is_visible()
    assert page.input_value("#scatter-x") == "cost/macs" and page.input_value("#scatter-y") == "acc"
    front = page.inner_text("#pareto-list")
    assert "w4a4" in front and "w8a8" in front and "fp32" in front and "bad" not in front
    page.wait_for_selector("#compare-charts .chart[data-key='acc'] canvas")
    page.select_option("#scatter-y-dir", "min")  # lower accuracy "better": the front changes
    assert "bad" in page.inner_text("#pareto-list") or "w4a4" in page.inner_text("#pareto-list")


def test_bulk_tag_and_delete_from_the_table(artifact_root, asgi_server, page_factory, user):
    from experiments.models import Run
    from experiments.storage import run_dir

    make_run(user, name="keep")
    gone = make_run(user, name="gone")
    run_dir(gone.pk).mkdir(parents=True)
    (run_dir(gone.pk) / "ckpt.pt").write_bytes(b"w")
    page = page_factory(asgi_server, user)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/runs/")
    page.check("#select-all")
    page.fill("#bulk-tag", "sweep-7")
    page.click("#bulk-tag-add")
    page.wait_for_selector("#runs-table .tags .badge")
    assert {r.name: r.tags for r in Run.objects.all()} == {"keep": ["sweep-7"], "gone": ["sweep-7"]}

    page.check(f".run-select[value='{gone.pk}']")
    page.click("#bulk-delete")
    wait_until(lambda: not Run.objects.filter(pk=gone.pk).exists(), message="run deleted")
    page.wait_for_load_state()
    assert list(Run.objects.values_list("name", flat=True)) == ["keep"]
    assert not run_dir(gone.pk).exists()
