"""How the engine reports: a small callback interface with no Django in it.

The engine calls these methods; a Celery task passes a reporter that writes to the database and publishes live
events, a CLI passes one that prints, and tests pass ``RecordingReporter``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class Reporter(Protocol):
    def on_metrics(self, step: int, metrics: dict[str, float], *, epoch: int | None = None) -> None:
        """Scalar metrics at a global step (loss, acc, lr, samples_per_s, macs_remaining, ...)."""

    def on_progress(self, *, step: int, total: int, epoch: int | None = None, message: str = "") -> None:
        """Work done so far out of ``total`` steps; the bridge derives ETA from it."""

    def on_log(self, line: str) -> None:
        """A human-readable line for the job log."""

    def on_artifact(self, path: str, *, kind: str, meta: dict[str, Any] | None = None) -> None:
        """A file written under the job's output directory (``path`` relative to it)."""

    def on_cost(self, report: dict[str, Any], *, step: int | None = None, label: str = "") -> None:
        """A hardware-cost report (see runner.engine.cost) for the current model or a checkpoint."""

    def should_stop(self) -> bool:
        """Polled between steps: True when the job was cancelled; the engine then returns cleanly."""


class NullReporter:
    def on_metrics(self, step, metrics, *, epoch=None):
        pass

    def on_progress(self, *, step, total, epoch=None, message=""):
        pass

    def on_log(self, line):
        pass

    def on_artifact(self, path, *, kind, meta=None):
        pass

    def on_cost(self, report, *, step=None, label=""):
        pass

    def should_stop(self):
        return False


@dataclass
class RecordingReporter:
    """Keeps everything in lists; for tests and notebooks."""

    metrics: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    progress: list[tuple[int, int]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    artifacts: list[tuple[str, str, dict]] = field(default_factory=list)
    costs: list[dict[str, Any]] = field(default_factory=list)
    stop_after_steps: int | None = None

    def on_metrics(self, step, metrics, *, epoch=None):
        self.metrics.append((step, dict(metrics)))

    def on_progress(self, *, step, total, epoch=None, message=""):
        self.progress.append((step, total))

    def on_log(self, line):
        self.logs.append(line)

    def on_artifact(self, path, *, kind, meta=None):
        self.artifacts.append((path, kind, dict(meta or {})))

    def on_cost(self, report, *, step=None, label=""):
        self.costs.append({"step": step, "label": label, **report})

    def should_stop(self):
        return self.stop_after_steps is not None and len(self.progress) >= self.stop_after_steps
