"""Writes for jobs. The API, the pages, the CLI, the Celery task and the admin call these; nothing else writes a Job.

State machine (the Job row is the source of truth, Celery is transport):

    queued ──start──▶ running ──finish──▶ succeeded | failed | cancelled
       │                 └──heartbeat stops──▶ lost ──resume──▶ (a new job from the last checkpoint)
       └──cancel──▶ cancelled

Dispatch happens after the submitting transaction commits. If the broker is unreachable the job stays ``queued`` with
``dispatched=False`` and the maintenance loop (every worker, the web process, ``manage.py reap_lost_jobs``) sends it
later. Starting is idempotent (only from ``queued``, under a row lock), so a message delivered twice runs once.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from experiments import storage
from experiments.models import Artifact, Run, RunKind, RunStatus
from experiments.services import project_get_or_create, run_create, run_set_status
from runner import streams
from runner.conf import job_setting
from runner.models import ACTIVE_STATUSES, FINAL_STATUSES, Job, JobLogLine, JobStatus

logger = logging.getLogger(__name__)

QUEUES = ("cpu", "gpu")
DEVICES = ("auto", "cpu", "cuda")
# Fields the runner consumes; everything else in a spec is the engine's and goes through validate_spec.
RUNNER_FIELDS = ("queue", "timeout", "project", "name", "tags", "parent_run", "notes")
# Deny by default: the engine's fields a submitted spec may set. Anything else (a "module", a "command", the engine's
# own "data_dir", which would let a user point a job at any directory on the server) is refused by name.
ENGINE_FIELDS = ("kind", "model", "dataset", "model_options", "dataset_options", "device", "processes", "seed",
                 "checkpoint", "resume", "hyperparameters", "input_shape", "num_classes")
NAME_FIELDS = ("kind", "model", "dataset", "device")  # registry look-ups: must be text before they are looked up
MAX_PROCESSES = 64
# Cost jobs whose hyperparameters name device profiles (resolved from the database at submit).
PROFILE_KINDS = ("estimate", "measure")
# Job kinds whose summary carries a measured device profile ({"profile": {...}}) that the worker stores.
MEASURED_PROFILE_KINDS = ("calibrate",)
_TAG_RE = re.compile(r"^[\w.+\-/@:]{1,50}$")


class JobLimitExceeded(Exception):
    """The user already has the maximum number of queued + running jobs."""


class JobStateError(Exception):
    """The operation does not apply to a job in its current state (e.g. retrying a running job)."""


# --- spec validation ------------------------------------------------------------------------------------------------

def _engine_validate(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    from runner.registry import load_job_kinds

    jobs = load_job_kinds()
    return jobs.validate_spec(spec)


def _as_int(value: Any, field: str, errors: dict[str, str], lo: int, hi: int) -> int | None:
    if isinstance(value, bool):
        errors[field] = f"must be an integer between {lo} and {hi}"
        return None
    try:
        number = int(value)
        if isinstance(value, float) and number != value:
            raise ValueError
    except (TypeError, ValueError):
        errors[field] = f"must be an integer between {lo} and {hi}"
        return None
    if not lo <= number <= hi:
        errors[field] = f"must be between {lo} and {hi}"
        return None
    return number


def _latest_checkpoint(run: Run) -> Artifact | None:
    return run.artifacts.filter(kind="checkpoint").order_by("-created_at", "-id").first()


def checkpoint_ref(artifact: Artifact) -> str:
    """How a spec names a checkpoint: its path relative to the artifact root ("<run id>/<path>")."""
    return f"{artifact.run_id}/{artifact.path}"


class CheckpointRefError(ValueError):
    """A checkpoint reference that does not name a file under the artifact root (bad form, traversal, missing)."""


def checkpoint_resolve(ref: str) -> Path:
    """The file a checkpoint reference "<run id>/<path>" names: ``ARTIFACT_ROOT/<run id>/<path>``, resolved.

    The engine loads it (``torch.load(weights_only=True)``) in the job's process, whose working directory is not the
    artifact root, so the worker hands it an absolute path. Anything that would leave the run's directory (``..``,
    an absolute path, a symbolic link pointing elsewhere) or is not a regular file raises CheckpointRefError.
    """
    text = str(ref or "")
    run_part, _, rel = text.partition("/")
    if not run_part.isdigit() or not rel:
        raise CheckpointRefError(f"checkpoint {text!r} is not '<run id>/<path>' under the artifact root")
    # The artifact store's own check (traversal, encoded forms, a symlinked run directory), not a second copy of it.
    try:
        path = storage.resolve_in_run(int(run_part), rel)
    except storage.UnsafePath as exc:
        raise CheckpointRefError(f"checkpoint {text!r} points outside its run's artifact directory ({exc})") from None
    if not path.is_file():
        raise CheckpointRefError(f"checkpoint {text!r}: the file is missing from the artifact store")
    return path


def spec_prepare(*, owner: AbstractBaseUser, spec: Any) -> dict[str, Any]:
    """Validate a submitted spec; return the runner's and the engine's parts, or raise ValidationError by field.

    Runner fields (queue, timeout, project, name, tags, parent_run) are checked here; the rest (kind, model, dataset,
    hyperparameters, device, processes, seed, checkpoint, ...) by the engine's ``validate_spec``, whose messages name
    the field and list the allowed values.
    """
    if not isinstance(spec, dict):
        raise ValidationError({"spec": "must be a JSON object"})
    errors: dict[str, str] = {}
    for key in spec:
        if key not in RUNNER_FIELDS and key not in ENGINE_FIELDS:
            errors[str(key)[:100]] = f"unknown field; allowed: {', '.join(sorted(RUNNER_FIELDS + ENGINE_FIELDS))}"
    for key in NAME_FIELDS:
        if key in spec and not isinstance(spec[key], str):
            errors[key] = f"{key} must be a name (text), got {type(spec[key]).__name__}"
    if errors:
        raise ValidationError({k: [v] for k, v in errors.items()})
    engine_spec = {k: v for k, v in spec.items() if k not in RUNNER_FIELDS}

    device = engine_spec.get("device", "auto")
    if device not in DEVICES:
        errors["device"] = f"unknown device {device!r}; allowed: {', '.join(DEVICES)}"
    engine_spec["device"] = device
    processes = _as_int(engine_spec.get("processes", 1), "processes", errors, 1, MAX_PROCESSES)
    engine_spec["processes"] = processes or 1
    queue = spec.get("queue") or ("gpu" if device == "cuda" else "cpu")
    if queue not in QUEUES:
        errors["queue"] = f"unknown queue {queue!r}; allowed: {', '.join(QUEUES)}"
    max_timeout = int(job_setting("MAX_TIMEOUT_S"))
    timeout = _as_int(spec.get("timeout", int(job_setting("DEFAULT_TIMEOUT_S"))), "timeout", errors, 1, max_timeout)
    if "seed" in engine_spec and engine_spec["seed"] is not None:
        seed = _as_int(engine_spec["seed"], "seed", errors, 0, 2**32 - 1)
        engine_spec["seed"] = seed
    name = spec.get("name") or ""
    if not isinstance(name, str) or len(name) > 200:
        errors["name"] = "must be text of at most 200 characters"
    project = spec.get("project") or "default"
    if not isinstance(project, str) or len(project) > 200:
        errors["project"] = "must be text of at most 200 characters"
    tags = spec.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    if not isinstance(tags, list) or not all(isinstance(t, str) and _TAG_RE.match(t) for t in tags) or len(tags) > 50:
        errors["tags"] = "must be a list of at most 50 tags of letters, digits and . + - / @ : (max 50 characters each)"
    hyper = engine_spec.get("hyperparameters", {})
    if hyper is not None and not isinstance(hyper, dict):
        errors["hyperparameters"] = "must be an object of name → value"

    parent = None
    if spec.get("parent_run") not in (None, ""):
        parent_id = _as_int(spec["parent_run"], "parent_run", errors, 1, 2**62)
        if parent_id is not None:
            parent = Run.objects.filter(owner=owner, pk=parent_id).first()
            if parent is None:
                errors["parent_run"] = f"no run {parent_id} among your runs"
    checkpoint = engine_spec.get("checkpoint")
    if checkpoint not in (None, ""):
        engine_spec["checkpoint"] = _check_checkpoint(owner, checkpoint, errors)
        if parent is None and "checkpoint" not in errors:
            parent = Run.objects.get(pk=int(str(checkpoint).split("/", 1)[0]))
    elif parent is not None and engine_spec.get("kind") != "train":
        # prune / quantize / estimate / measure start from the parent's newest checkpoint.
        artifact = _latest_checkpoint(parent)
        if artifact is None:
            errors["parent_run"] = f"run {parent.pk} has no checkpoint artifact to start from"
        else:
            engine_spec["checkpoint"] = checkpoint_ref(artifact)
    else:
        engine_spec.pop("checkpoint", None)

    if engine_spec.get("kind") in PROFILE_KINDS and isinstance(hyper, dict):
        # The engine knows only the builtin device profiles: measured and admin-edited ones travel in the spec.
        from runner.costs import cost_spec_resolve_profiles

        try:
            engine_spec = cost_spec_resolve_profiles(engine_spec)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                errors.setdefault(field, " ".join(messages))
    if engine_spec.get("kind") in MEASURED_PROFILE_KINDS and isinstance(hyper, dict):
        from runner.costs import device_profile_writable

        target = hyper.get("name", "local")
        if isinstance(target, str) and not device_profile_writable(target):
            errors["hyperparameters.name"] = (f"{target!r} is a builtin or hand-edited device profile; a calibration "
                                              "saves under a new name or over a measured profile")
    if not errors or set(errors) <= {"name", "project", "tags", "queue", "timeout", "parent_run"}:
        try:
            clean, engine_errors = _engine_validate(engine_spec)
        except NotImplementedError:
            clean, engine_errors = engine_spec, {"kind": "the engine is not installed on this server"}
        for field, message in engine_errors.items():
            errors.setdefault(field, message)
    if errors:
        raise ValidationError({k: [v] for k, v in errors.items()})
    return {
        "engine": clean, "queue": queue, "timeout": timeout, "name": name, "project": project, "tags": tags,
        "parent": parent, "notes": str(spec.get("notes") or "")[:10000],
    }


def _check_checkpoint(owner: AbstractBaseUser, ref: Any, errors: dict[str, str]) -> str | None:
    """A checkpoint must be an artifact of one of the owner's runs: "<run id>/<relative path>" (no traversal)."""
    text = str(ref)
    run_part, _, path = text.partition("/")
    if not run_part.isdigit() or not path or ".." in path.split("/") or path.startswith("/"):
        errors["checkpoint"] = "must be '<run id>/<path>' of a checkpoint artifact of one of your runs"
        return None
    if not Artifact.objects.filter(run__owner=owner, run_id=int(run_part), path=path).exists():
        errors["checkpoint"] = f"no artifact {text!r} among your runs"
        return None
    return text


# --- submit and dispatch -------------------------------------------------------------------------------------------

@transaction.atomic
def job_submit(*, owner: AbstractBaseUser, spec: dict[str, Any], retry_of: Job | None = None) -> Job:
    """Validate a spec, create its Run and Job in one transaction, and dispatch the job once that commits."""
    prepared = spec_prepare(owner=owner, spec=spec)
    limit = int(job_setting("MAX_ACTIVE_PER_USER"))
    # Serialise this user's submits on their user row: locking only the active Job rows would let concurrent
    # submits that all see the same (possibly zero) rows each slip under the limit.
    # get_user_model(), not type(owner): a view passes request.user, a lazy wrapper around the user.
    get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
    active = list(Job.objects.filter(owner=owner, status__in=ACTIVE_STATUSES).values_list("pk"))
    if len(active) >= limit:
        raise JobLimitExceeded(
            f"You already have {len(active)} queued or running jobs (limit {limit}); "
            "wait for one to finish or cancel one."
        )
    engine = prepared["engine"]
    kind = engine["kind"]
    project = project_get_or_create(owner=owner, name=prepared["project"])
    run = run_create(
        owner=owner,
        project=project,
        name=prepared["name"] or f"{kind}-{engine.get('model', '')}-{engine.get('dataset', '')}".strip("-"),
        kind=kind if kind in RunKind.values else RunKind.OTHER,
        config=engine,
        tags=prepared["tags"],
        parent=prepared["parent"],
        status=RunStatus.QUEUED,
        notes=prepared["notes"],
        seed=engine.get("seed"),
        device=engine.get("device", ""),
        command=f"job {kind}",
    )
    job = Job.objects.create(
        owner=owner, run=run, kind=kind, spec=engine, request=dict(spec), queue=prepared["queue"],
        device=engine.get("device", "auto"), processes=engine.get("processes", 1), timeout_s=prepared["timeout"],
        retry_of=retry_of,
    )
    job_id, run_id = job.pk, run.pk
    transaction.on_commit(lambda: streams.reset(run_id))
    transaction.on_commit(lambda: _publish_status(job_id))
    transaction.on_commit(lambda: job_dispatch(job_id=job_id))
    return job


def broker_reachable(timeout_s: float = 1.0) -> bool:
    import redis

    from labbook.celery import app

    try:
        redis.Redis.from_url(app.conf.broker_url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s).ping()
        return True
    except redis.RedisError:
        return False


def job_dispatch(*, job_id: int, check_broker: bool = True) -> bool:
    """Send a queued, undispatched job to its queue; True when sent. Safe to call twice or concurrently.

    The row is claimed with a conditional UPDATE before sending and released again if the broker refuses, so two
    dispatchers never both send (and if a message were delivered twice, ``job_start`` would still run it once).
    """
    from runner.tasks import execute_job

    job = Job.objects.filter(pk=job_id, status=JobStatus.QUEUED, dispatched=False).only("pk", "queue").first()
    # A quick ping first: with the broker down, kombu's own connect-and-retry would stall the request for seconds.
    if job is None or (check_broker and not broker_reachable()):
        return False
    task_id = f"job-{job_id}-{timezone.now().timestamp():.0f}"
    claimed = Job.objects.filter(pk=job_id, status=JobStatus.QUEUED, dispatched=False).update(
        dispatched=True, dispatched_at=timezone.now(), celery_task_id=task_id
    )
    if not claimed:
        return False
    try:
        execute_job.apply_async(args=[job_id], queue=job.queue, task_id=task_id, retry=False)
    except Exception as exc:  # noqa: BLE001 - kombu raises several types for an unreachable broker
        logger.warning("job %s not dispatched (broker unreachable: %s); it stays queued", job_id, exc)
        Job.objects.filter(pk=job_id, celery_task_id=task_id).update(dispatched=False, dispatched_at=None)
        return False
    return True


def jobs_dispatch_pending() -> int:
    """Dispatch every queued job that is not yet on the broker (submitted while the broker was down)."""
    ids = list(Job.objects.filter(status=JobStatus.QUEUED, dispatched=False, cancel_requested=False)
               .order_by("created_at").values_list("pk", flat=True)[:500])
    if not ids or not broker_reachable():
        return 0
    return sum(job_dispatch(job_id=job_id, check_broker=False) for job_id in ids)


# --- the worker side -----------------------------------------------------------------------------------------------

@transaction.atomic
def job_start(*, job_id: int, hostname: str, pid: int, task_id: str = "") -> Job | None:
    """Mark a queued job running on this worker; None when it is not queued (redelivered, cancelled, lost)."""
    job = Job.objects.select_for_update().select_related("run").filter(pk=job_id).first()
    if job is None or job.status != JobStatus.QUEUED:
        return None
    now = timezone.now()
    if job.cancel_requested:
        _finish(job, JobStatus.CANCELLED, error="cancelled before it started")
        return None
    job.status = JobStatus.RUNNING
    job.started_at = now
    job.heartbeat_at = now
    job.attempts += 1
    job.worker_hostname = hostname[:200]
    job.worker_pid = pid
    if task_id:
        job.celery_task_id = task_id
    job.save(update_fields=["status", "started_at", "heartbeat_at", "attempts", "worker_hostname", "worker_pid",
                            "celery_task_id"])
    run_set_status(run=job.run, status=RunStatus.RUNNING)
    Run.objects.filter(pk=job.run_id).update(environment={**(job.run.environment or {}), "host": hostname})
    transaction.on_commit(lambda: _publish_status(job_id))
    return job


def job_heartbeat(*, job_id: int) -> bool:
    """Record that the worker is alive; return True when the user asked to cancel."""
    now = timezone.now()
    Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(heartbeat_at=now)
    return bool(Job.objects.filter(pk=job_id, cancel_requested=True).exists())


def job_record_progress(*, job_id: int, step: int, total: int | None, epoch: int | None, message: str,
                        eta_s: float | None) -> None:
    Job.objects.filter(pk=job_id).update(
        progress_step=step, progress_total=total, epoch=epoch, progress_message=message[:300], eta_s=eta_s,
        progress_at=timezone.now(), heartbeat_at=timezone.now(),
    )


def job_log_append(*, job_id: int, lines: Iterable[tuple[str, str]]) -> tuple[int, int]:
    """Append (stream, text) lines to a job's log, numbering them; returns (first seq, how many were stored)."""
    lines = list(lines)
    if not lines:
        return 0, 0
    with transaction.atomic():
        job = Job.objects.select_for_update().only("pk", "log_line_count").get(pk=job_id)
        room = max(0, int(job_setting("MAX_LOG_LINES")) - job.log_line_count)
        kept = lines[:room]
        start = job.log_line_count
        JobLogLine.objects.bulk_create(
            [JobLogLine(job_id=job_id, seq=start + i, stream=stream[:10], text=text[:4000])
             for i, (stream, text) in enumerate(kept)]
        )
        Job.objects.filter(pk=job_id).update(log_line_count=start + len(kept))
    return start, len(kept)


@transaction.atomic
def job_finish(*, job_id: int, status: str, error: str = "", summary: dict | None = None) -> Job:
    """Final state of a job that ran (succeeded, failed, cancelled); idempotent. A job the reaper marked lost whose
    worker turns out to be alive (a network partition) still gets its real outcome."""
    job = Job.objects.select_for_update().select_related("run").get(pk=job_id)
    if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        return job
    _finish(job, status, error=error, summary=summary)
    return job


def _finish(job: Job, status: str, *, error: str = "", summary: dict | None = None) -> None:
    now = timezone.now()
    job.status = status
    job.finished_at = now
    job.error = error[:20000]
    job.eta_s = None
    if summary is not None:
        job.summary = summary
    if status == JobStatus.SUCCEEDED and job.progress_total:
        job.progress_step = job.progress_total
    job.save(update_fields=["status", "finished_at", "error", "eta_s", "summary", "progress_step"])
    run_set_status(run=job.run, status=status)
    job_id = job.pk
    transaction.on_commit(lambda: _publish_status(job_id))


# --- user actions --------------------------------------------------------------------------------------------------

@transaction.atomic
def job_cancel(*, job: Job, user: AbstractBaseUser) -> Job:
    """Cancel: a queued job is cancelled at once; a running one gets the flag its worker polls (then SIGTERM/KILL)."""
    job = Job.objects.select_for_update().select_related("run").get(pk=job.pk, owner=user)
    if job.status == JobStatus.QUEUED:
        job.cancel_requested = True
        job.cancel_requested_at = timezone.now()
        job.save(update_fields=["cancel_requested", "cancel_requested_at"])
        _finish(job, JobStatus.CANCELLED, error="cancelled before it started")
    elif job.status == JobStatus.RUNNING and not job.cancel_requested:
        job.cancel_requested = True
        job.cancel_requested_at = timezone.now()
        job.save(update_fields=["cancel_requested", "cancel_requested_at"])
        job_id = job.pk
        transaction.on_commit(lambda: _publish_status(job_id))
    elif job.status in FINAL_STATUSES:
        raise JobStateError(f"job {job.pk} is already {job.status}")
    return job


def job_retry(*, job: Job, user: AbstractBaseUser) -> Job:
    """A new job with the same request (new run), for a job that ended without success."""
    if job.owner_id != user.pk:
        raise Job.DoesNotExist
    if job.status in ACTIVE_STATUSES:
        raise JobStateError(f"job {job.pk} is still {job.status}; cancel it first")
    request = dict(job.request or job.spec)
    return job_submit(owner=user, spec=request, retry_of=job)


def job_resume(*, job: Job, user: AbstractBaseUser) -> Job:
    """A new job that continues a lost, failed or cancelled one from the newest checkpoint its run wrote."""
    if job.owner_id != user.pk:
        raise Job.DoesNotExist
    if job.status in ACTIVE_STATUSES or job.status == JobStatus.SUCCEEDED:
        raise JobStateError(f"job {job.pk} is {job.status}; only lost, failed or cancelled jobs can be resumed")
    artifact = _latest_checkpoint(job.run)
    if artifact is None:
        raise JobStateError(f"job {job.pk} wrote no checkpoint to resume from; retry it instead")
    request = dict(job.request or job.spec)
    request["checkpoint"] = checkpoint_ref(artifact)
    request["parent_run"] = job.run_id
    request.setdefault("name", f"{job.run.name} (resumed)")
    return job_submit(owner=user, spec=request, retry_of=job)


# --- failure detection ---------------------------------------------------------------------------------------------

@transaction.atomic
def job_mark_lost(*, job_id: int, reason: str = "") -> bool:
    """Mark a running job lost when its heartbeat is still stale under the row lock (re-checked: no false alarm)."""
    cutoff = timezone.now() - timedelta(seconds=job_setting("LOST_AFTER_S"))
    job = Job.objects.select_for_update().select_related("run").filter(pk=job_id, status=JobStatus.RUNNING).first()
    if job is None or (job.heartbeat_at is not None and job.heartbeat_at >= cutoff):
        return False
    last = job.heartbeat_at.isoformat(timespec="seconds") if job.heartbeat_at else "never"
    _finish(job, JobStatus.LOST, error=reason or (
        f"worker {job.worker_hostname or '?'} (pid {job.worker_pid}) stopped sending heartbeats (last: {last}); "
        "it was killed or its machine went down. Resume the job from its last checkpoint, or retry it."
    ))
    return True


def jobs_reap_lost() -> int:
    """Mark lost every running job whose heartbeat is older than ``LOST_AFTER_S``; returns how many."""
    cutoff = timezone.now() - timedelta(seconds=job_setting("LOST_AFTER_S"))
    stale = Job.objects.filter(status=JobStatus.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    ).values_list("pk", flat=True)
    return sum(job_mark_lost(job_id=job_id) for job_id in list(stale))


def jobs_maintain() -> dict[str, int]:
    """One maintenance pass: reap lost jobs, dispatch undispatched ones. Every worker runs it periodically."""
    return {"lost": jobs_reap_lost(), "dispatched": jobs_dispatch_pending()}


# --- live events ---------------------------------------------------------------------------------------------------

def job_status_payload(job: Job) -> dict[str, Any]:
    return {
        "job": job.pk, "status": job.status, "error": job.error[:2000], "cancel_requested": job.cancel_requested,
        "worker": job.worker_hostname, "started_at": job.started_at, "finished_at": job.finished_at,
        "dispatched": job.dispatched,
    }


def _publish_status(job_id: int) -> None:
    job = Job.objects.filter(pk=job_id).first()
    if job is not None:
        streams.publish(job.run_id, "status", job_status_payload(job))

