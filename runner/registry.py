"""The engine's registries as the runner sees them: job kinds, models and datasets (names only, for forms and
validation). Importing happens here, once, so that the web process, the worker and the engine child agree."""
from __future__ import annotations

import importlib
import logging
from types import ModuleType

logger = logging.getLogger(__name__)

# Engine modules imported with the job registry (runner.engine.jobs lists every kind itself); extra modules from
# settings (tests' job kinds) register theirs on import.
ENGINE_MODULES = ("runner.engine.train", "runner.engine.prune", "runner.engine.quantize", "runner.engine.cost")


def load_job_kinds() -> ModuleType:
    """Import runner.engine.jobs and every module that registers job kinds; return the jobs module."""
    from runner.conf import extra_job_modules

    jobs = importlib.import_module("runner.engine.jobs")
    for name in (*ENGINE_MODULES, *extra_job_modules()):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but one of its imports is missing: that is a real error
                raise
    return jobs


def _names(module: str, attr: str) -> list[str]:
    try:
        registry = getattr(importlib.import_module(module), attr, {})
    except ImportError:
        return []
    return sorted(registry)


def engine_choices() -> dict[str, list[str]]:
    """Names for the job form and ``GET /api/jobs/options/``."""
    jobs = load_job_kinds()
    return {
        "kind": sorted(jobs.JOB_KINDS),
        "model": _names("runner.engine.models", "MODELS"),
        "dataset": _names("runner.engine.datasets", "DATASETS"),
        "device": ["auto", "cpu", "cuda"],
        "queue": ["cpu", "gpu"],
    }
