"""The engine's job entry point: one function the worker, the CLI and the tests call.

Contract (kept stable; the runner depends on it):

    JOB_KINDS: dict[str, Callable[[dict, Path, Reporter], dict]]
        "train" | "prune" | "quantize" | "sensitivity" | "estimate" | "measure" | "calibrate"
        -> function(spec, out_dir, reporter)
        -> summary dict
    validate_spec(spec: dict) -> tuple[dict, dict[str, str]]
        returns (normalised spec, errors by field). An error names the field and lists the allowed values, e.g.
        {"model": "unknown model 'resnet99'; allowed: cnn, mlp, resnet20, ..."}.
    run_job(spec: dict, out_dir: Path, reporter: Reporter) -> dict
        validates, then runs JOB_KINDS[spec["kind"]]; raises SpecError on an invalid spec.

A spec is plain JSON: {"kind": ..., "model": ..., "dataset": ..., "hyperparameters": {...}, "device": "auto"|"cpu"|
"cuda", "processes": 1, "seed": 0, "checkpoint": "<path relative to an artifact root>" (optional), ...}. No field is
ever evaluated, imported or passed to a shell: names are looked up in registries.

The job functions import their modules when called, so importing this file stays cheap and the cost jobs (written
separately in runner.engine.cost_jobs) plug in as soon as that module exists.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.engine.reporter import Reporter


class SpecError(ValueError):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


JobFn = Callable[[dict, Path, Reporter], dict]


def _lazy(module: str, function: str) -> JobFn:
    def job(spec: dict, out_dir: Path, reporter: Reporter) -> dict:
        return getattr(importlib.import_module(module), function)(spec, out_dir, reporter)

    job.__name__ = job.__qualname__ = function
    job.__doc__ = f"Runs {module}.{function} (imported on first use)."
    return job


JOB_KINDS: dict[str, JobFn] = {
    "train": _lazy("runner.engine.train", "train_job"),
    "prune": _lazy("runner.engine.prune", "prune_job"),
    "sensitivity": _lazy("runner.engine.sensitivity", "sensitivity_job"),
    "quantize": _lazy("runner.engine.quantize", "quantize_job"),
    "estimate": _lazy("runner.engine.cost_jobs", "estimate_job"),
    "measure": _lazy("runner.engine.cost_jobs", "measure_job"),
    # Measures the worker it runs on (matmul peak per dtype, copy bandwidth); the runner saves the profile.
    "calibrate": _lazy("runner.engine.cost_jobs", "calibrate_job"),
}


def job_kinds() -> list[str]:
    return list(JOB_KINDS)


def validate_spec(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    from runner.engine.spec import validate

    return validate(spec)


def run_job(spec: dict[str, Any], out_dir: Path, reporter: Reporter) -> dict[str, Any]:
    clean, errors = validate_spec(spec)
    if errors:
        raise SpecError(errors)
    out_dir.mkdir(parents=True, exist_ok=True)
    return JOB_KINDS[clean["kind"]](clean, out_dir, reporter)
