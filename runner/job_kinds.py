"""Job kinds the runner adds to the engine's registry until the engine registers them itself (no Django here: the
engine's child process imports this too, through runner.registry.ENGINE_MODULES).

``calibrate`` measures the worker it runs on (runner.engine.cost_jobs.calibrate_job: matmul peak per dtype and copy
bandwidth); when it succeeds the worker stores the profile as a measured DeviceProfile (runner.execution), so a job
on a GPU worker can calibrate that GPU, which ``manage.py estimate_cost --calibrate`` on the web host cannot.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.engine import jobs


def calibrate(spec: dict, out_dir: Path, reporter) -> dict:
    from runner.engine.cost_jobs import calibrate_job

    return calibrate_job(spec, out_dir, reporter)


def _validate_calibrate(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    from runner.engine.cost_jobs import validate_options

    clean = dict(spec)
    hp = spec.get("hyperparameters") or {}
    if not isinstance(hp, dict):
        return clean, {"hyperparameters": "hyperparameters must be an object"}
    clean["hyperparameters"], errors = validate_options("calibrate", hp)
    clean["device"] = spec.get("device", "auto")
    if clean["device"] not in ("auto", "cpu", "cuda"):
        errors["device"] = f"unknown device {clean['device']!r}; allowed: auto, cpu, cuda"
    clean["processes"] = spec.get("processes", 1)
    if clean["processes"] != 1:
        errors["processes"] = "a calibration runs in one process; use processes 1"
    for field in ("model", "dataset", "checkpoint"):
        if spec.get(field) not in (None, ""):
            errors[field] = f"a calibrate job measures the device and takes no {field}"
        clean.pop(field, None)
    return clean, errors


if "calibrate" not in jobs.JOB_KINDS:
    jobs.JOB_KINDS["calibrate"] = calibrate
    _engine_validate = jobs.validate_spec

    def validate_spec(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        if isinstance(spec, dict) and spec.get("kind") == "calibrate" and jobs.JOB_KINDS.get("calibrate") is calibrate:
            return _validate_calibrate(spec)
        return _engine_validate(spec)

    jobs.validate_spec = validate_spec
