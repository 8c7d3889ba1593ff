from __future__ import annotations

import pytest

from tests.experiments.factories import make_run

pytestmark = pytest.mark.django_db


def test_run_notes_resolve_wikilinks_for_the_viewer(client, user):
    parent = make_run(user, name="dense-baseline")
    run = make_run(user, name="pruned", notes=f"pruned from [[run:{parent.pk}]] <script>alert(1)</script>")
    client.force_login(user)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert f'href="/runs/{parent.pk}/"' in html
    assert "<script>alert(1)</script>" not in html
