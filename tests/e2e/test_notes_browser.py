"""Notes in a real browser: headless Chromium against a real uvicorn server on the test database."""
from __future__ import annotations

import pytest
from django.utils import timezone

from notes import services
from notes.models import DailyLog, LogKind, ReadingListItem
from tests.conftest import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXT = (
    "## 剪枝实验\n\n"
    "今天在 resnet20 上做了结构化剪枝，FLOPs 降低 40%，精度只掉了 0.3%。\n\n"
    "Roofline: $I = \\frac{FLOPs}{Bytes}$ and\n\n$$t = \\max\\left(\\frac{W}{P}, \\frac{Q}{B}\\right)$$\n"
)


# Two cores shared with other suites: give page actions more room than the fixture's 15 s default.
SLOW_MACHINE_TIMEOUT_MS = 40000


def _page(page_factory, server, user):
    page = page_factory(server, user)
    page.set_default_timeout(SLOW_MACHINE_TIMEOUT_MS)
    return page


def _todays_body(user) -> str:
    log = DailyLog.objects.filter(owner=user, kind=LogKind.DAY, date=timezone.localdate()).first()
    return log.body if log else ""


def test_write_math_and_chinese_on_today_see_it_rendered_and_find_it(asgi_server, page_factory, user):
    page = _page(page_factory, asgi_server, user)
    page.goto("/today/")
    textarea = page.locator(".notes-textarea")
    textarea.fill(TEXT)
    # Live preview: MathML rendered on the server, no network beyond our own origin.
    page.locator(".notes-preview math").first.wait_for()
    assert page.locator('.notes-preview math[display="block"]').count() == 1
    assert "结构化剪枝" in page.locator(".notes-preview").inner_text()
    # Autosave lands in the database verbatim.
    wait_until(lambda: _todays_body(user) == TEXT, timeout=20, message="autosave to reach the database")
    page.locator('.notes-save-state[data-state="saved"]').wait_for()
    # Reload: the stored, sanitised rendering has the math.
    page.reload()
    assert page.locator(".notes-preview math").count() >= 2
    # Search finds it with a two-character Chinese query, highlighted.
    page.goto("/search/?q=剪枝")
    result = page.locator(".notes-result").first
    result.wait_for()
    assert result.locator("mark").first.inner_text() == "剪枝"
    result.locator("a").first.click()
    page.wait_for_url(f"**/logs/{timezone.localdate().isoformat()}/")
    assert page.locator(".notes-preview math").count() >= 2


def test_failed_save_keeps_text_and_retries_until_saved(asgi_server, page_factory, user):
    services.log_save(owner=user, date=timezone.localdate(), body="before")
    page = _page(page_factory, asgi_server, user)
    page.goto("/today/")
    save_url = f"**/api/logs/by-date/{timezone.localdate().isoformat()}/"
    page.route(save_url, lambda route: route.abort("connectionrefused"))
    page.locator(".notes-textarea").fill("before\n\n断网时写的字不能丢")
    page.locator('.notes-save-state[data-state="error"]').wait_for()
    assert "Unsaved" in page.locator(".notes-save-state").inner_text()
    assert page.locator(".notes-textarea").input_value() == "before\n\n断网时写的字不能丢"
    draft = page.evaluate("Object.entries(localStorage).filter(([k]) => k.startsWith('labbook:draft:'))[0][1]")
    assert "断网时写的字不能丢" in draft
    assert _todays_body(user) == "before"
    page.unroute(save_url)
    wait_until(lambda: _todays_body(user) == "before\n\n断网时写的字不能丢", timeout=30,
               message="the retry to save the text")
    page.locator('.notes-save-state[data-state="saved"]').wait_for()


def test_text_changed_elsewhere_is_not_overwritten(asgi_server, page_factory, user, make_run_e2e):
    services.log_save(owner=user, date=timezone.localdate(), body="morning")
    page = _page(page_factory, asgi_server, user)
    page.goto("/today/")
    run = make_run_e2e(user)
    services.log_add_run_to_today(owner=user, run=run)  # e.g. the run page's button, in another tab
    page.locator(".notes-textarea").fill("morning, typed in a stale tab")
    page.locator(".notes-conflict").wait_for()
    assert f"[[run:{run.pk}]]" in _todays_body(user)  # the newer text survived
    page.locator('.notes-conflict [data-act="mine"]').click()
    wait_until(lambda: _todays_body(user) == "morning, typed in a stale tab", message="keep-mine save")
    from notes.models import Revision

    assert Revision.objects.filter(log__owner=user, body__contains=f"[[run:{run.pk}]]").exists()


def test_draft_left_in_browser_is_restored_and_saved(asgi_server, page_factory, user):
    page = _page(page_factory, asgi_server, user)
    page.goto("/today/")
    key = f"labbook:draft:log:{user.pk}:{timezone.localdate().isoformat()}"
    page.evaluate("([k, v]) => localStorage.setItem(k, JSON.stringify({body: v, at: Date.now()}))",
                  [key, "closed the tab before it saved"])
    page.reload()
    assert page.locator(".notes-textarea").input_value() == "closed the tab before it saved"
    wait_until(lambda: _todays_body(user) == "closed the tab before it saved", message="restored draft to save")


def test_reading_list_reorders_with_keyboard_and_mouse(asgi_server, page_factory, user):
    rl = services.reading_list_create(owner=user, title="Quant")
    for title in ["LSQ", "HAQ", "PACT"]:
        services.reading_list_item_add(reading_list=rl, paper=services.paper_create(owner=user, title=title))

    def order():
        return list(ReadingListItem.objects.filter(reading_list=rl).order_by("order").values_list("paper__title",
                                                                                                  flat=True))

    page = _page(page_factory, asgi_server, user)
    page.goto(f"/reading-lists/{rl.pk}/")
    page.locator('.notes-rl-item[aria-label="LSQ"]').focus()
    page.keyboard.press("Alt+ArrowDown")
    wait_until(lambda: order() == ["HAQ", "LSQ", "PACT"], message="keyboard reorder to persist")
    page.locator('button[aria-label="Move PACT up"]').click()
    wait_until(lambda: order() == ["HAQ", "PACT", "LSQ"], message="button reorder to persist")
    page.locator('.notes-rl-item[aria-label="LSQ"]').drag_to(page.locator('.notes-rl-item[aria-label="HAQ"]'),
                                                           target_position={"x": 10, "y": 5})
    wait_until(lambda: order() == ["LSQ", "HAQ", "PACT"], message="drag and drop reorder to persist")


def test_run_page_button_adds_run_to_todays_log(asgi_server, page_factory, user, make_run_e2e):
    run = make_run_e2e(user)
    page = _page(page_factory, asgi_server, user)
    page.goto(f"/runs/{run.pk}/")
    page.locator('[data-testid="add-to-today"]').click()
    page.wait_for_url(f"**/runs/{run.pk}/")
    wait_until(lambda: f"[[run:{run.pk}]]" in _todays_body(user), message="the run link in today's log")
    # The run page's backlinks panel now lists today's log.
    assert page.locator(".notes-backlink-list a", has_text=timezone.localdate().isoformat()).count() == 1
    page.goto("/today/")
    assert f"[[run:{run.pk}]]" in page.locator(".notes-textarea").input_value()
    assert page.locator(f'.notes-preview a.wikilink[href="/runs/{run.pk}/"]').count() == 1


@pytest.fixture
def make_run_e2e():
    from experiments.models import Project, Run

    def make(owner):
        project, _ = Project.objects.get_or_create(owner=owner, slug="p", defaults={"name": "P"})
        return Run.objects.create(project=project, owner=owner, name="e2e-run")

    return make
