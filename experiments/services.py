"""Writes for experiment tracking. Views, serializers, tasks and the runner bridge call these; nothing else writes."""
from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from experiments import metric_store, storage
from experiments.ingest import Point
from experiments.metric_store import KeyAggregate
from experiments.models import Artifact, Project, Run, RunKind, RunStatus, RunTag

logger = logging.getLogger(__name__)

__all__ = [
    "Point", "IngestResult", "metric_is_minimized", "flatten_params", "project_get_or_create", "run_create",
    "run_set_status", "run_update", "run_delete", "runs_delete", "runs_tag", "metrics_ingest", "metrics_ingest_batch",
    "artifact_store", "artifact_register", "artifact_delete",
]

# Metrics where smaller is better; "best" for every other key is the maximum.
_MINIMIZE_HINTS = ("loss", "error", "err", "lr", "latency", "time", "macs", "flops", "bops", "energy", "bytes", "ppl")
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST)
TAG_MAX_LENGTH = 100


def metric_is_minimized(key: str) -> bool:
    name = key.lower().rsplit("/", 1)[-1]
    if key.lower().startswith("cost/"):
        return True
    return any(hint in name for hint in _MINIMIZE_HINTS)


def flatten_params(config: dict, prefix: str = "") -> dict:
    """{"optim": {"lr": 0.1}} -> {"optim.lr": 0.1}; lists of scalars are kept as values."""
    flat: dict = {}
    for key, value in (config or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def clean_tags(tags: Iterable[str] | None) -> list[str]:
    out = set()
    for tag in tags or []:
        tag = str(tag).strip()
        if not tag:
            continue
        if len(tag) > TAG_MAX_LENGTH:
            raise ValueError(f"tag longer than {TAG_MAX_LENGTH} characters: {tag[:20]}…")
        out.add(tag)
    return sorted(out)


def _sync_tags(run: Run) -> None:
    """Mirror ``run.tags`` into RunTag rows (the portable, indexed side used by the query language)."""
    wanted = set(run.tags or [])
    have = set(RunTag.objects.filter(run=run).values_list("name", flat=True))
    if have - wanted:
        RunTag.objects.filter(run=run, name__in=have - wanted).delete()
    if wanted - have:
        RunTag.objects.bulk_create([RunTag(run=run, name=n) for n in wanted - have], ignore_conflicts=True)


def project_get_or_create(*, owner: AbstractBaseUser, name: str) -> Project:
    slug = slugify(name, allow_unicode=True)[:200] or "default"
    project, _ = Project.objects.get_or_create(owner=owner, slug=slug, defaults={"name": name[:200] or slug})
    return project


@transaction.atomic
def run_create(
    *,
    owner: AbstractBaseUser,
    project: Project,
    name: str = "",
    kind: str = "other",
    config: dict | None = None,
    tags: list[str] | None = None,
    parent: Run | None = None,
    status: str = RunStatus.RUNNING,
    client_id: str = "",
    **fields: Any,
) -> Run:
    """Create a run. With ``client_id``, creating the same run twice returns the first one (idempotent retries)."""
    if client_id:
        existing = Run.objects.filter(owner=owner, client_id=client_id).first()
        if existing is not None:
            return existing
    if parent is not None and parent.owner_id != owner.pk:
        raise ValueError("parent run belongs to another user")
    if kind not in RunKind.values:
        raise ValueError(f"unknown kind {kind!r}")
    config = config or {}
    now = timezone.now()
    fields.setdefault("started_at", now if status == RunStatus.RUNNING else None)
    if status in FINISHED:
        fields.setdefault("ended_at", now)
    try:
        with transaction.atomic():
            run = Run.objects.create(
                owner=owner,
                project=project,
                name=name or "run",
                kind=kind,
                config=config,
                params=flatten_params(config),
                tags=clean_tags(tags),
                parent=parent,
                status=status,
                client_id=client_id,
                **fields,
            )
    except IntegrityError:
        if client_id:  # a concurrent retry created it a moment ago
            return Run.objects.get(owner=owner, client_id=client_id)
        raise
    if not name:
        run.name = f"run-{run.pk}"
        run.save(update_fields=["name"])
    _sync_tags(run)
    return run


def run_set_status(*, run: Run, status: str) -> Run:
    now = timezone.now()
    updates: dict[str, Any] = {"status": status}
    if status == RunStatus.RUNNING and run.started_at is None:
        updates["started_at"] = now
    if status in FINISHED:
        updates["ended_at"] = now
    Run.objects.filter(pk=run.pk).update(**updates)
    for field, value in updates.items():
        setattr(run, field, value)
    return run


@transaction.atomic
def run_update(
    *,
    run: Run,
    name: str | None = None,
    status: str | None = None,
    notes: str | None = None,
    tags: list[str] | None = None,
    kind: str | None = None,
    parent: Run | None | bool = False,
    ended_at: Any = None,
) -> Run:
    """Partial update; ``parent=False`` means "leave it", ``parent=None`` clears it."""
    update_fields: list[str] = []
    if name is not None:
        run.name = name[:200]
        update_fields.append("name")
    if notes is not None:
        run.notes = notes
        update_fields.append("notes")
    if kind is not None:
        if kind not in RunKind.values:
            raise ValueError(f"unknown kind {kind!r}")
        run.kind = kind
        update_fields.append("kind")
    if parent is not False:
        if parent is not None and (parent.pk == run.pk or _is_descendant(parent, run)):
            raise ValueError("a run cannot be its own ancestor")
        run.parent = parent  # type: ignore[assignment]
        update_fields.append("parent")
    if tags is not None:
        run.tags = clean_tags(tags)
        update_fields.append("tags")
    if update_fields:
        run.save(update_fields=[*update_fields, "updated_at"])
    if tags is not None:
        _sync_tags(run)
    if status is not None and status != run.status:
        if status not in RunStatus.values:
            raise ValueError(f"unknown status {status!r}")
        run_set_status(run=run, status=status)
        if ended_at is not None and status in FINISHED:
            Run.objects.filter(pk=run.pk).update(ended_at=ended_at)
            run.ended_at = ended_at
    return run


def _is_descendant(candidate: Run, ancestor: Run) -> bool:
    seen = set()
    node: Run | None = candidate
    while node is not None and node.pk not in seen:
        if node.parent_id == ancestor.pk:
            return True
        seen.add(node.pk)
        node = node.parent
    return False


@transaction.atomic
def runs_tag(*, owner: AbstractBaseUser, run_ids: Iterable[int], add: Iterable[str] = (),
             remove: Iterable[str] = ()) -> int:
    """Add and/or remove tags on many runs of ``owner``; returns how many runs were changed."""
    add_set, remove_set = set(clean_tags(add)), set(clean_tags(remove))
    changed = 0
    for run in Run.objects.select_for_update().filter(owner=owner, pk__in=list(run_ids)):
        tags = (set(run.tags or []) | add_set) - remove_set
        if tags != set(run.tags or []):
            run.tags = sorted(tags)
            run.save(update_fields=["tags", "updated_at"])
            _sync_tags(run)
            changed += 1
    return changed


def _remove_artifact_dir(run_id: int) -> None:
    path = storage.run_dir(run_id)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.is_symlink():
        path.unlink()


@transaction.atomic
def run_delete(*, run: Run) -> None:
    """Delete a run with its points and artifacts; the files go once the deletion is committed."""
    run_id = run.pk
    run.delete()
    transaction.on_commit(lambda: _remove_artifact_dir(run_id))


@transaction.atomic
def runs_delete(*, owner: AbstractBaseUser, run_ids: Iterable[int]) -> int:
    runs = list(Run.objects.filter(owner=owner, pk__in=list(run_ids)))
    for run in runs:
        run_delete(run=run)
    return len(runs)


# --- metrics ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IngestResult:
    received: int
    stored: int

    @property
    def duplicates(self) -> int:
        return self.received - self.stored


def _update_summary(summary: dict, aggregates: Iterable[KeyAggregate]) -> dict:
    """Fold newly stored points into {"key": {last, last_step, min, max, best, best_step, count}}."""
    for a in aggregates:
        minimized = metric_is_minimized(a.key)
        best_step, best = (a.min_step, a.min) if minimized else (a.max_step, a.max)
        s = summary.get(a.key)
        if s is None:
            summary[a.key] = {"last": a.last, "last_step": a.last_step, "min": a.min, "max": a.max, "best": best,
                              "best_step": best_step, "count": a.count}
            continue
        s["count"] = s.get("count", 0) + a.count
        if a.last_step >= s.get("last_step", -1):
            s["last"], s["last_step"] = a.last, a.last_step
        s["min"] = min(s["min"], a.min)
        s["max"] = max(s["max"], a.max)
        old, old_step = s.get("best"), s.get("best_step")
        # Ties go to the earliest step, whatever order the batches arrived in.
        if (old is None or (best < old if minimized else best > old)
                or (best == old and old_step is not None and best_step < old_step)):
            s["best"], s["best_step"] = best, best_step
    return summary


@transaction.atomic
def metrics_ingest(*, run: Run, points: Iterable[Point]) -> IngestResult:
    """Store points with one bulk insert, skipping any (run, key, step) already stored.

    Idempotent: a client that retries a batch after a timeout stores nothing twice, and the run's
    ``metric_summary`` (last, min, max, best, count per key) and, on PostgreSQL, the series' block rollups only
    count points that were new. The run's row is locked first, so concurrent batches for one run are serialised:
    no summary update is lost, and they cannot deadlock on each other's points or rollup rows. Non-finite values
    are skipped.
    """
    now = time.time()
    isfinite = math.isfinite
    points = points if isinstance(points, list) else list(points)
    values = list(map(itemgetter(2), points))
    if None not in values and all(map(isfinite, values)) and None not in map(itemgetter(3), points):
        clean = points  # as ingest.parse_batch returns them: checked with C-level builtins, not rebuilt
    else:
        clean = [
            p if p.wall_time is not None else Point(p.key, p.step, p.value, now)
            for p in points if p.value is not None and isfinite(p.value)
        ]
    if not clean:
        return IngestResult(received=0, stored=0)
    locked = Run.objects.select_for_update().only("id", "metric_summary").get(pk=run.pk)
    aggregates = metric_store.insert_points(run.pk, clean)
    stored = sum(a.count for a in aggregates)
    if stored:
        summary = _update_summary(dict(locked.metric_summary or {}), aggregates)
        Run.objects.filter(pk=run.pk).update(metric_summary=summary, updated_at=timezone.now())
        run.metric_summary = summary
    return IngestResult(received=len(clean), stored=stored)


def metrics_ingest_batch(*, run: Run, points: Iterable[Point]) -> int:
    """Compatibility wrapper for the runner bridge: returns how many points were new."""
    return metrics_ingest(run=run, points=points).stored


# --- artifacts -------------------------------------------------------------------------------------------------------

def artifact_store(*, run: Run, path: str, chunks: Iterable[bytes], kind: str = "", meta: dict | None = None,
                   max_bytes: int | None = None) -> Artifact:
    """Stream an upload to ``ARTIFACT_ROOT/<run>/<path>`` (sha256 computed on the way) and record it.

    Raises storage.UnsafePath for a bad path and storage.ArtifactTooLarge past ``ARTIFACT_MAX_BYTES``.
    Writing the file happens outside the transaction (it can take minutes); the row is written after.
    """
    rel = storage.clean_relative_path(path)
    limit = settings.ARTIFACT_MAX_BYTES if max_bytes is None else max_bytes
    _, size, sha = storage.write_stream(run.pk, rel, chunks, max_bytes=limit)
    artifact, _ = Artifact.objects.update_or_create(
        run=run, path=rel,
        defaults={"kind": kind[:50], "size": size, "sha256": sha, "meta": meta or {}, "created_at": timezone.now()},
    )
    return artifact


def artifact_register(*, run: Run, path: str, kind: str = "", meta: dict | None = None) -> Artifact:
    """Record a file that is already under the run's artifact directory (written by a job)."""
    target = storage.resolve_in_run(run.pk, path)
    if not target.is_file():
        raise FileNotFoundError(f"no artifact file at {path}")
    size, sha = storage.hash_file(target)
    artifact, _ = Artifact.objects.update_or_create(
        run=run, path=storage.clean_relative_path(path),
        defaults={"kind": kind[:50], "size": size, "sha256": sha, "meta": meta or {}, "created_at": timezone.now()},
    )
    return artifact


@transaction.atomic
def artifact_delete(*, artifact: Artifact) -> None:
    try:
        target = storage.resolve_in_run(artifact.run_id, artifact.path)
    except storage.UnsafePath:
        target = None
    artifact.delete()
    if target is not None:
        transaction.on_commit(lambda: target.unlink(missing_ok=True))


def artifact_adopt(*, run: Run, path: str, tmp_path: Any, size: int, sha256: str, kind: str = "",
                   meta: dict | None = None) -> Artifact:
    """Move a completely received upload (already hashed, inside the run's directory) to ``path`` and record it."""
    import os

    try:
        target = storage.resolve_in_run(run.pk, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target = storage.resolve_in_run(run.pk, path)  # again, after mkdir, in case a parent is a link
        if target.is_symlink() or target.is_dir():
            raise storage.UnsafePath("path names a directory or a link")
        os.replace(tmp_path, target)
    finally:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
    artifact, _ = Artifact.objects.update_or_create(
        run=run, path=storage.clean_relative_path(path),
        defaults={"kind": kind[:50], "size": size, "sha256": sha256, "meta": meta or {},
                  "created_at": timezone.now()},
    )
    return artifact
