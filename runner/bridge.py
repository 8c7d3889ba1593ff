"""The worker-side Reporter: turns engine callbacks into database rows and live events.

Metrics and log lines are buffered and flushed in batches (``FLUSH_INTERVAL_S``, ≤ 200 ms): each batch is first
published to the run's Redis stream (so viewers see it at once) and then written through
experiments.services.metrics_ingest_batch and runner.services.job_log_append. A page that renders history from the
database resumes the stream a few seconds back (runner.streams.page_resume_id), so a batch published but not yet
written when the page read the database still reaches it; listeners drop what they already have by (key, step) for
points and by seq for log lines. Progress is published every flush and written to the Job row at most once a second.
Artifacts become experiments Artifact rows; cost reports go to runner.costs when the cost estimator is installed.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from experiments.models import Artifact, Run
from experiments.services import Point, metrics_ingest_batch
from runner import streams
from runner.conf import job_setting
from runner.models import Job  # noqa: F401 - type of JobBridge's argument
from runner.services import job_log_append, job_record_progress

logger = logging.getLogger(__name__)

METRIC_KEY_RE = re.compile(r"^[A-Za-z0-9_.\-/@]{1,200}$")


class EtaEstimator:
    """Seconds left from the average rate since the first report of the current total (steps/s, robust to jitter)."""

    def __init__(self) -> None:
        self._origin: tuple[float, int] | None = None
        self._total: int | None = None

    def update(self, step: int, total: int | None, now: float) -> float | None:
        if not total or total <= 0:
            return None
        if self._origin is None or total != self._total or step < self._origin[1]:
            self._origin, self._total = (now, step), total
            return None
        t0, s0 = self._origin
        if step <= s0 or now <= t0:
            return None
        rate = (step - s0) / (now - t0)
        return max(0.0, (total - step) / rate)


class JobBridge:
    """Reporter for one job, driven from the worker's supervising thread (not thread-safe by design)."""

    def __init__(self, job: Job, out_dir: Path):
        self.job_id = job.pk
        self.run: Run = job.run
        self.out_dir = out_dir
        self.cancel_requested = False
        self._points: list[Point] = []
        self._logs: list[tuple[str, str]] = []
        self._progress: dict[str, Any] | None = None  # newest report not yet published
        self._unsaved_progress: dict[str, Any] | None = None  # newest report not yet written to the Job row
        self._progress_written_at = 0.0
        self._last_flush = time.monotonic()
        self._eta = EtaEstimator()
        self._partial: dict[str, str] = {}
        self.dropped_keys: set[str] = set()
        self._log_seq = job.log_line_count

    # --- Reporter -------------------------------------------------------------------------------------------------
    def on_metrics(self, step: int, metrics: dict[str, float], *, epoch: int | None = None,
                   wall_time: float | None = None) -> None:
        now = wall_time or time.time()
        for key, value in metrics.items():
            if not METRIC_KEY_RE.match(str(key)):
                if key not in self.dropped_keys:
                    self.dropped_keys.add(key)
                    self.on_log(f"metric key {key!r} ignored: use letters, digits and _ . - / (max 200)", "runner")
                continue
            self._points.append(Point(key=str(key), step=int(step), value=float(value), wall_time=now))

    def on_progress(self, *, step: int, total: int | None, epoch: int | None = None, message: str = "") -> None:
        eta = self._eta.update(int(step), total, time.monotonic())
        self._progress = {"step": int(step), "total": total, "epoch": epoch, "message": message, "eta_s": eta}

    def on_log(self, line: str, stream: str = "engine") -> None:
        for part in str(line).splitlines() or [""]:
            self._logs.append((stream, part.rsplit("\r", 1)[-1]))

    def on_output(self, chunk: str, stream: str) -> None:
        """Captured stdout/stderr text (may end mid-line); complete lines go to the log, \\r keeps the last redraw."""
        text = self._partial.pop(stream, "") + chunk
        *lines, rest = text.split("\n")
        for line in lines:
            self._logs.append((stream, line.rsplit("\r", 1)[-1]))
        if rest:
            self._partial[stream] = rest

    def on_artifact(self, path: str, *, kind: str, meta: dict[str, Any] | None = None) -> Artifact | None:
        target = (self.out_dir / path).resolve()
        root = self.out_dir.resolve()
        if root not in target.parents or not target.is_file():
            self.on_log(f"artifact {path!r} ignored: not a file inside the job's output directory", "runner")
            return None
        relative = target.relative_to(root).as_posix()
        digest = hashlib.sha256()
        with target.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        artifact, _ = Artifact.objects.update_or_create(
            run=self.run, path=relative,
            defaults={"kind": kind[:50], "size": target.stat().st_size, "sha256": digest.hexdigest(),
                      "meta": meta or {}, "created_at": timezone.now()},
        )
        self.flush()  # metrics written before the checkpoint reach the database before anyone resumes from it
        streams.publish(self.run.pk, "artifact", {"path": relative, "kind": kind, "size": artifact.size,
                                                   "meta": meta or {}})
        return artifact

    def on_cost(self, report: dict[str, Any], *, step: int | None = None, label: str = "") -> None:
        if importlib.util.find_spec("runner.costs") is not None:
            from runner import costs

            try:
                # At the engine's step, so the cost/* series share the x axis of the training metrics.
                costs.cost_report_attach(run=self.run, report=report, label=label or "model",
                                         step=int(step) if step is not None else None)
            except Exception as exc:  # noqa: BLE001 - a bad report must not fail the training it describes
                logger.exception("cost report of run %s not stored", self.run.pk)
                self.on_log(f"cost report {label!r} not stored: {exc}", "runner")
        streams.publish(self.run.pk, "cost", {"label": label, "step": step, "report": report})

    def should_stop(self) -> bool:
        return self.cancel_requested

    # --- batching -------------------------------------------------------------------------------------------------
    def flush_due(self) -> bool:
        return time.monotonic() - self._last_flush >= job_setting("FLUSH_INTERVAL_S")

    def flush(self, *, final: bool = False) -> None:
        self._last_flush = time.monotonic()
        if final:
            for stream, rest in self._partial.items():
                self._logs.append((stream, rest.rsplit("\r", 1)[-1]))
            self._partial.clear()
        if self._points:
            points, self._points = self._points, []
            streams.publish(self.run.pk, "metrics", {"points": [
                {"key": p.key, "step": p.step, "value": p.value, "wall_time": p.wall_time} for p in points
            ]})
            metrics_ingest_batch(run=self.run, points=points)
        if self._logs:
            lines, self._logs = self._logs, []
            # This bridge is the only writer of its job's log, so it can number lines before storing them.
            start = self._log_seq
            self._log_seq += len(lines)
            streams.publish(self.run.pk, "log", {"job": self.job_id, "lines": [
                {"seq": start + i, "stream": stream, "text": text} for i, (stream, text) in enumerate(lines)
            ]})
            job_log_append(job_id=self.job_id, lines=lines)
        if self._progress is not None:
            streams.publish(self.run.pk, "progress", {"job": self.job_id, **self._progress})
            self._unsaved_progress, self._progress = self._progress, None
        now = time.monotonic()
        due = now - self._progress_written_at >= job_setting("PROGRESS_DB_INTERVAL_S")
        if self._unsaved_progress is not None and (final or due):
            progress, self._unsaved_progress = self._unsaved_progress, None
            self._progress_written_at = now
            job_record_progress(job_id=self.job_id, step=progress["step"], total=progress["total"],
                                epoch=progress["epoch"], message=progress["message"] or "", eta_s=progress["eta_s"])


def artifact_dir(run_id: int) -> Path:
    """Where a run's artifacts live (settings.ARTIFACT_ROOT / <run id>)."""
    return Path(settings.ARTIFACT_ROOT) / str(int(run_id))
