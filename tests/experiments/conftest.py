from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def artifact_root(settings, tmp_path):
    """Each test gets its own artifact root (run ids restart per test database; files must not leak across)."""
    root = tmp_path / "artifacts"
    root.mkdir()
    settings.ARTIFACT_ROOT = root
    return root
