"""The process a job's engine runs in: ``python -m runner.child SPEC.json OUT_DIR`` (started by runner.execution).

No Django here. The engine reports through ``PipeReporter``, which writes one JSON object per line to the file
descriptor named by LABBOOK_EVENT_FD; the worker reads them and does the database writes and live publishing.
Cancellation is a file (LABBOOK_STOP_FILE) whose appearance ``should_stop`` notices between steps. The process runs
in its own session so the worker can signal it together with any DDP processes it spawns, and asks the kernel to
kill it if the worker dies, so a ``kill -9`` of a worker leaves no orphan training on the machine.
"""
from __future__ import annotations

import ctypes
import importlib
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

# How often should_stop looks at the stop file (seconds); a stat() per step would be wasteful on fast loops.
STOP_POLL_S = 0.1


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG: SIGKILL this process when the worker process that started it dies (Linux only)."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(70)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


class PipeReporter:
    """The engine's Reporter inside the child: every callback becomes one JSON line to the worker."""

    def __init__(self, fd: int, stop_file: str):
        self._out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()  # DDP helpers or data-loader threads may report concurrently
        self._stop_file = stop_file
        self._stopped = False
        self._checked_at = 0.0

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, default=_json_default, allow_nan=True)
        with self._lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (BrokenPipeError, OSError):
                os._exit(70)  # the worker is gone: nothing would record this work

    def on_metrics(self, step, metrics, *, epoch=None):
        values = {}
        for key, value in dict(metrics).items():
            try:
                values[str(key)] = float(value)
            except (TypeError, ValueError):
                continue
        self.send({"t": "metrics", "step": int(step), "metrics": values, "epoch": epoch, "time": time.time()})

    def on_progress(self, *, step, total, epoch=None, message=""):
        self.send({"t": "progress", "step": int(step), "total": int(total) if total is not None else None,
                   "epoch": epoch, "message": str(message)[:300]})

    def on_log(self, line):
        self.send({"t": "log", "line": str(line)})

    def on_artifact(self, path, *, kind, meta=None):
        self.send({"t": "artifact", "path": str(path), "kind": str(kind), "meta": dict(meta or {})})

    def on_cost(self, report, *, step=None, label=""):
        self.send({"t": "cost", "report": report, "step": step, "label": str(label)})

    def should_stop(self) -> bool:
        if self._stopped:
            return True
        now = time.monotonic()
        if now - self._checked_at >= STOP_POLL_S:
            self._checked_at = now
            self._stopped = os.path.exists(self._stop_file)
        return self._stopped


def main(argv: list[str]) -> int:
    _die_with_parent()
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    out_dir = Path(argv[2])
    reporter = PipeReporter(int(os.environ["LABBOOK_EVENT_FD"]), os.environ["LABBOOK_STOP_FILE"])

    from runner.registry import ENGINE_MODULES

    jobs = importlib.import_module("runner.engine.jobs")
    extra = [m.strip() for m in os.environ.get("LABBOOK_JOB_MODULES", "").split(",") if m.strip()]
    for name in (*ENGINE_MODULES, *extra):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    try:
        summary = jobs.run_job(spec, out_dir, reporter) or {}
    except jobs.SpecError as exc:
        reporter.send({"t": "error", "message": f"invalid spec: {exc}", "errors": exc.errors})
        return 3
    except Exception as exc:  # noqa: BLE001 - everything the engine raises is reported, with its traceback
        reporter.send({"t": "error", "message": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
        return 1
    clean = {k: v for k, v in summary.items() if not (isinstance(v, float) and not math.isfinite(v))}
    reporter.send({"t": "result", "summary": clean, "stopped": reporter.should_stop()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
