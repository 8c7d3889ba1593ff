from __future__ import annotations

from pathlib import Path

import pytest

LOCAL_SAMPLES = Path(__file__).parent / "samples"


def sample_text(name: str) -> str:
    """Copies of the user's sample files (shared/samples), kept in the repository so CI has them."""
    path = LOCAL_SAMPLES / name
    return path.read_text(encoding="utf-8")


@pytest.fixture
def journal_text() -> str:
    return sample_text("journal.md")


@pytest.fixture
def paper_stack_text() -> str:
    return sample_text("paper_stack.md")


@pytest.fixture
def make_run(db):
    from experiments.models import Project, Run

    def make(owner, name: str = "resnet20-prune", **fields):
        project, _ = Project.objects.get_or_create(owner=owner, slug="p", defaults={"name": "P"})
        return Run.objects.create(project=project, owner=owner, name=name, **fields)

    return make
