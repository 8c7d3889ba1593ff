"""The cost charts in a real browser: roofline dots and ridge points, profile re-timing, live panel updates."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from torch import nn

from experiments.models import Artifact
from experiments.services import project_get_or_create, run_create
from runner import costs
from runner.engine.cost import apply_profile, estimate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def artifact_root(settings, tmp_path):
    # the server subprocess reads LABBOOK_ARTIFACT_ROOT from settings.ARTIFACT_ROOT when it starts
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()

QUERY = "model=cnn&dataset=digits&w_bits=8&a_bits=8&profile=a100&batch_size=4"


def test_estimate_page_draws_the_roofline_and_retimes_for_another_profile(asgi_server, page_factory, user):
    page = page_factory(asgi_server, user)
    page.goto(f"/cost/?{QUERY}", timeout=90000)  # the first request imports torch in the server
    page.wait_for_selector("#cost-charts svg .layer-dot")
    report = page.evaluate("JSON.parse(document.getElementById('cost-report').textContent)")
    with_macs = [r for r in report["layers"] if r["flops"] > 0]
    assert page.locator("#cost-charts svg .layer-dot").count() == len(with_macs)
    assert page.locator("#cost-charts svg .ridge[data-ridge='int8']").count() == 1
    assert page.locator("#cost-charts .cost-bars tbody tr").count() == len(report["layers"])
    # hovering a dot shows its details
    page.locator("#cost-charts svg .layer-dot").first.hover(force=True)
    assert with_macs[0]["name"] in page.locator("#cost-charts .cost-tip").inner_text()
    # re-timing on the slow FPGA-like profile changes the latency total
    before = page.locator("#cost-charts [data-total='latency'] strong").inner_text()
    page.select_option("#cost-charts select.cost-profile", "desktop-cpu")
    page.wait_for_function("document.getElementById('cost-charts').dataset.profile === 'desktop-cpu'")
    assert page.locator("#cost-charts [data-total='latency'] strong").inner_text() != before
    # and the browser's re-timing is the engine's apply_profile
    retimed = apply_profile(report, "desktop-cpu")["totals"]["latency_s"]
    assert float(page.locator("#cost-charts").get_attribute("data-latency")) == pytest.approx(retimed, rel=1e-9)


def test_run_panel_loads_the_report_and_follows_live_cost_events(asgi_server, page_factory, user):
    run = run_create(owner=user, project=project_get_or_create(owner=user, name="p"), name="r")
    dense = estimate(nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4)), (32,))
    costs.cost_report_attach(run=run, report=dense, label="dense")
    run_dir = Path(settings.ARTIFACT_ROOT) / str(run.pk)
    (run_dir / "sensitivity.json").write_text(json.dumps({"layers": ["0", "2"], "ratios": [0.25, 0.5, 0.75],
                                                          "acc": [[0.9, 0.8, 0.5], [0.91, 0.9, 0.85]],
                                                          "baseline": 0.93}))
    Artifact.objects.create(run=run, path="sensitivity.json", kind="sensitivity")
    page = page_factory(asgi_server, user)
    page.goto("/cost/profiles/")  # any page: the panel markup and scripts are added the way the run page has them
    page.evaluate("""(runId) => {
        const s = document.createElement('section');
        s.setAttribute('data-cost-panel', ''); s.dataset.runId = runId; s.dataset.apiUrl = `/api/cost/runs/${runId}/`;
        s.innerHTML = '<div data-cost-body></div>';
        document.querySelector('main').append(s);
    }""", run.pk)
    page.add_script_tag(url="/static/js/runner/cost.js")
    page.add_script_tag(url="/static/js/runner/cost_panel.js")
    page.wait_for_selector("[data-cost-panel][data-state='report']")
    assert page.locator("[data-cost-panel]").get_attribute("data-cost-panel") == ""
    assert page.locator("[data-cost-body]").get_attribute("data-macs") == str(dense["totals"]["macs"])
    assert page.locator("[data-cost-body] .heat td.heat-cell").count() == 6
    assert "unpruned 0.930" in page.locator("[data-cost-body] .cost-heatmap h4").inner_text()
    # a pruning step streams a smaller model's report
    pruned = estimate(nn.Sequential(nn.Linear(32, 8), nn.ReLU(), nn.Linear(8, 4)), (32,))
    page.evaluate("""([runId, report]) => document.dispatchEvent(new CustomEvent('labbook:cost',
        {detail: {run: runId, label: 'step1', step: 1, report: report}}))""", [run.pk, pruned])
    page.wait_for_function(f"document.querySelector('[data-cost-body]').dataset.macs === '{pruned['totals']['macs']}'")
    # the run's report history shows the MACs left after the step: (32*8 + 8*4) / (32*16 + 16*4) = 288 / 576
    left = page.locator(".cost-history tr[data-label='step1'] td").nth(4).inner_text()
    assert left == "50.0%"
    # events for other runs are ignored
    page.evaluate("""([runId, report]) => document.dispatchEvent(new CustomEvent('labbook:cost',
        {detail: {run: runId + 1, report: report}}))""", [run.pk, dense])
    assert page.locator("[data-cost-body]").get_attribute("data-macs") == str(pruned["totals"]["macs"])


def test_run_page_panel_estimates_the_run_on_request(asgi_server, page_factory, user):
    run = run_create(owner=user, project=project_get_or_create(owner=user, name="p"), name="logged",
                     config={"model": "cnn", "dataset": "digits"})
    page = page_factory(asgi_server, user)
    page.goto(f"/runs/{run.pk}/", timeout=90000)
    page.wait_for_selector("[data-cost-panel][data-state='empty']")
    form = page.locator("[data-cost-estimate]")
    form.locator("input[name=w_bits]").fill("4")
    form.locator("input[name=a_bits]").fill("4")
    form.locator("select[name=profile]").select_option("fpga-int")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("[data-cost-panel][data-state='report'] svg .layer-dot", timeout=60000)
    assert page.locator("[data-cost-body]").get_attribute("data-profile") == "fpga-int"
    report = costs.cost_report_latest(run=run)
    assert report["bits"]["default"] == [4, 4]
    assert page.locator("[data-cost-body]").get_attribute("data-macs") == str(report["totals"]["macs"])
