"""Tiny, real job kinds for the runner's tests, registered into the engine's JOB_KINDS.

Loaded in the test process by tests/runner/conftest.py and in workers/engine processes through the
LABBOOK_JOB_MODULES setting (the same mechanism an operator uses for extra job kinds). Specs of these kinds are
validated here; every other kind goes to the engine's own validate_spec.
"""
from __future__ import annotations

import signal
import time
from pathlib import Path

from runner.engine import jobs


def _count(spec: dict, out_dir: Path, reporter) -> dict:
    """Counts steps: metrics and progress every ``interval_ms``; honours should_stop; optional checkpoints/prints."""
    hp = spec.get("hyperparameters") or {}
    steps = int(hp.get("steps", 10))
    interval = float(hp.get("interval_ms", 20)) / 1000
    start = int(hp.get("start", 0))
    if spec.get("checkpoint"):
        # The worker hands over the checkpoint file's absolute path; its content is b"checkpoint <step>".
        start = int(Path(spec["checkpoint"]).read_bytes().split()[-1])
        reporter.on_log(f"resuming from {spec['checkpoint']} at step {start}")
    reporter.on_log(f"counting to {steps}")
    for step in range(start, steps):
        if reporter.should_stop():
            reporter.on_log(f"stopped at step {step}")
            return {"steps": step, "stopped": True}
        time.sleep(interval)
        reporter.on_metrics(step, {"loss": 1.0 / (step + 1), "acc": step / steps}, epoch=step // 10)
        reporter.on_progress(step=step + 1, total=steps, epoch=step // 10)
        if hp.get("print_every") and step % int(hp["print_every"]) == 0:
            print(f"stdout line {step}", flush=True)
        every = int(hp.get("checkpoint_every", 0))
        if every and (step + 1) % every == 0:
            path = Path("checkpoints") / f"step_{step + 1}.pt"
            (out_dir / path.parent).mkdir(parents=True, exist_ok=True)
            (out_dir / path).write_bytes(b"checkpoint %d" % (step + 1))
            reporter.on_artifact(path.as_posix(), kind="checkpoint", meta={"step": step + 1})
        if hp.get("fail_at") is not None and step == int(hp["fail_at"]):
            raise RuntimeError(f"deliberate failure at step {step}")
    if hp.get("cost"):
        reporter.on_cost({"totals": {"macs": 1000, "params": 10}}, step=steps, label="final")
    return {"steps": steps, "final_loss": 1.0 / steps}


def _stubborn(spec: dict, out_dir: Path, reporter) -> dict:
    """Ignores should_stop and SIGTERM: only SIGKILL stops it (tests the escalation)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    step = 0
    while True:
        step += 1
        reporter.on_progress(step=step, total=None)
        time.sleep(0.05)


TEST_KINDS = {"test_count": _count, "test_stubborn": _stubborn}
_engine_validate = getattr(jobs.validate_spec, "__wrapped_engine__", jobs.validate_spec)


def validate_spec(spec: dict) -> tuple[dict, dict[str, str]]:
    if spec.get("kind") in TEST_KINDS:
        errors = {}
        steps = (spec.get("hyperparameters") or {}).get("steps", 10)
        if not isinstance(steps, int) or steps < 1:
            errors["hyperparameters.steps"] = "must be a positive integer"
        return dict(spec), errors
    try:
        return _engine_validate(spec)
    except NotImplementedError:  # the engine is not merged yet: only the test kinds exist
        return dict(spec), {"kind": f"unknown kind {spec.get('kind')!r}; allowed: {', '.join(sorted(jobs.JOB_KINDS))}"}


validate_spec.__wrapped_engine__ = _engine_validate
jobs.validate_spec = validate_spec
jobs.JOB_KINDS.update(TEST_KINDS)
