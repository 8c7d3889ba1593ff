"""Small factories for experiments tests (through the services, like real callers)."""
from __future__ import annotations

from experiments import services
from experiments.ingest import Point


def make_run(owner, *, project: str = "proj", name: str = "", config: dict | None = None, tags=None, **fields):
    proj = services.project_get_or_create(owner=owner, name=project)
    return services.run_create(owner=owner, project=proj, name=name, config=config or {}, tags=tags or [], **fields)


def log(run, key: str, values, start: int = 0, wall0: float = 1_700_000_000.0):
    points = [Point(key, start + i, float(v), wall0 + start + i) for i, v in enumerate(values)]
    return services.metrics_ingest(run=run, points=points)
