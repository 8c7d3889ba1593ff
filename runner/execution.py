"""Running one job on a worker: start it, supervise its engine process, record the outcome.

The engine runs in a child process (runner.child) in its own session, so that cancel and timeout can stop it — and
any DDP processes it spawned — with SIGTERM, then SIGKILL after a grace period, whatever it is doing. This thread
reads the child's events and output and writes them through the JobBridge; a heartbeat thread proves the worker is
alive and picks up cancel requests.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection

from runner import services
from runner.bridge import JobBridge, artifact_dir
from runner.conf import extra_job_modules, job_setting
from runner.models import Job, JobStatus

logger = logging.getLogger(__name__)

# Lines of stderr quoted in the error of a job whose engine crashed without reporting why.
STDERR_TAIL = 30


def execute_job(*, job_id: int, hostname: str, task_id: str = "") -> str:
    """The body of the Celery task; returns the final status (or "skipped" when the job was not queued)."""
    job = services.job_start(job_id=job_id, hostname=hostname, pid=os.getpid(), task_id=task_id)
    if job is None:
        return "skipped"
    try:
        status = Supervisor(job).run()
    except Exception:  # noqa: BLE001 - a bug here must still leave the job in a final state
        logger.exception("job %s crashed in the worker", job_id)
        services.job_finish(job_id=job_id, status=JobStatus.FAILED, error=traceback.format_exc())
        status = JobStatus.FAILED
    return status


class Supervisor:
    def __init__(self, job: Job):
        self.job = job
        self.out_dir = artifact_dir(job.run_id)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.bridge = JobBridge(job, self.out_dir)
        self.events: queue.Queue = queue.Queue()
        self.cancel = threading.Event()
        self.done = threading.Event()
        self.result: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.stderr_tail: list[str] = []

    # --- threads --------------------------------------------------------------------------------------------------
    def _read_events(self, fd: int) -> None:
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    self.events.put(("event", json.loads(line)))
                except ValueError:
                    self.events.put(("output", ("engine", line)))
        self.events.put(("eof", "events"))

    def _read_output(self, pipe, stream: str) -> None:
        for chunk in iter(lambda: pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536), b""):
            self.events.put(("output", (stream, chunk.decode("utf-8", errors="replace"))))
        self.events.put(("eof", stream))

    def _heartbeat(self) -> None:
        interval = job_setting("HEARTBEAT_S")
        try:
            while not self.done.wait(interval):
                try:
                    if services.job_heartbeat(job_id=self.job.pk):
                        self.cancel.set()
                except Exception:  # noqa: BLE001 - a DB blip must not kill the heartbeat; the next one retries
                    logger.exception("heartbeat of job %s failed", self.job.pk)
                    close_old_connections()
        finally:
            connection.close()

    # --- main loop ------------------------------------------------------------------------------------------------
    def run(self) -> str:
        job = self.job
        try:
            spec = engine_spec(job)
        except services.CheckpointRefError as exc:
            return self._refuse(str(exc))
        control = Path(tempfile.mkdtemp(prefix=f"labbook-job{job.pk}-"))
        spec_path, stop_file = control / "spec.json", control / "stop"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        read_fd, write_fd = os.pipe()
        env = {**os.environ, "LABBOOK_EVENT_FD": str(write_fd), "LABBOOK_STOP_FILE": str(stop_file),
               "PYTHONUNBUFFERED": "1", "LABBOOK_JOB_MODULES": ",".join(extra_job_modules()),
               "LABBOOK_JOB_ID": str(job.pk), "LABBOOK_RUN_ID": str(job.run_id)}
        self.bridge.on_log(f"job {job.pk} started on {job.worker_hostname} (pid {os.getpid()}), "
                           f"queue {job.queue}, device {job.device}, processes {job.processes}", "runner")
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner.child", str(spec_path), str(self.out_dir)],
            cwd=settings.BASE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(write_fd,), start_new_session=True,
        )
        os.close(write_fd)
        readers = [
            threading.Thread(target=self._read_events, args=(read_fd,), daemon=True),
            threading.Thread(target=self._read_output, args=(proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._read_output, args=(proc.stderr, "stderr"), daemon=True),
        ]
        heartbeat = threading.Thread(target=self._heartbeat, daemon=True)
        for thread in (*readers, heartbeat):
            thread.start()
        try:
            outcome = self._supervise(proc, stop_file, started, open_streams=3)
        finally:
            self.done.set()
            _kill_group(proc, signal.SIGKILL)  # leftovers (DDP helpers) of a finished engine
            heartbeat.join(timeout=5)
            shutil.rmtree(control, ignore_errors=True)
        return outcome

    def _refuse(self, error: str) -> str:
        """Fail the job before its engine starts (its spec cannot be run as it stands)."""
        self.bridge.on_log(error, "runner")
        self.bridge.flush(final=True)
        services.job_finish(job_id=self.job.pk, status=JobStatus.FAILED, error=error)
        return JobStatus.FAILED

    def _supervise(self, proc: subprocess.Popen, stop_file: Path, started: float, open_streams: int) -> str:
        grace = job_setting("CANCEL_GRACE_S")
        deadline = started + self.job.timeout_s
        stopping_since: float | None = None
        reason = ""
        signalled = 0
        exited_at: float | None = None
        while True:
            try:
                kind, payload = self.events.get(timeout=0.05)
                self._handle(kind, payload)
                if kind == "eof":
                    open_streams -= 1
                # Drain what is already there before doing anything else, so bursts are batched.
                while True:
                    kind, payload = self.events.get_nowait()
                    self._handle(kind, payload)
                    if kind == "eof":
                        open_streams -= 1
            except queue.Empty:
                pass
            now = time.monotonic()
            if self.bridge.flush_due():
                self.bridge.flush()
            if stopping_since is None and (self.cancel.is_set() or now > deadline):
                reason = "cancelled" if self.cancel.is_set() else "timeout"
                stopping_since = now
                stop_file.touch()
                self.bridge.cancel_requested = True
                self.bridge.on_log(
                    "cancel requested: asking the engine to stop" if reason == "cancelled"
                    else f"time limit of {self.job.timeout_s} s reached: stopping the engine", "runner")
            if stopping_since is not None and proc.poll() is None:
                if signalled == 0 and now - stopping_since > grace:
                    self.bridge.on_log("engine did not stop between steps: sending SIGTERM", "runner")
                    _kill_group(proc, signal.SIGTERM)
                    signalled = 1
                elif signalled == 1 and now - stopping_since > 2 * grace:
                    self.bridge.on_log("engine ignored SIGTERM: sending SIGKILL", "runner")
                    _kill_group(proc, signal.SIGKILL)
                    signalled = 2
            if proc.poll() is not None:
                exited_at = exited_at or now
                # Wait for the pipes to drain; give up after a few seconds if a grandchild still holds them.
                if open_streams <= 0 or now - exited_at > 3:
                    break
        self.bridge.flush(final=True)
        return self._finish(proc.returncode, reason, time.monotonic() - started)

    def _handle(self, kind: str, payload: Any) -> None:
        if kind == "output":
            stream, text = payload
            if stream == "stderr":
                self.stderr_tail = (self.stderr_tail + text.splitlines())[-STDERR_TAIL:]
            self.bridge.on_output(text, stream)
        elif kind == "event":
            self._handle_event(payload)

    def _handle_event(self, event: dict[str, Any]) -> None:
        t = event.get("t")
        if t == "metrics":
            self.bridge.on_metrics(event["step"], event.get("metrics") or {}, epoch=event.get("epoch"),
                                   wall_time=event.get("time"))
        elif t == "progress":
            self.bridge.on_progress(step=event["step"], total=event.get("total"), epoch=event.get("epoch"),
                                    message=event.get("message") or "")
        elif t == "log":
            self.bridge.on_log(event.get("line", ""))
        elif t == "artifact":
            self.bridge.on_artifact(event["path"], kind=event.get("kind") or "other", meta=event.get("meta"))
        elif t == "cost":
            self.bridge.flush()
            self.bridge.on_cost(event.get("report") or {}, step=event.get("step"), label=event.get("label") or "")
        elif t == "result":
            self.result = event
        elif t == "error":
            self.error = event
            if event.get("traceback"):
                self.bridge.on_log(event["traceback"], "stderr")

    def _finish(self, returncode: int | None, reason: str, elapsed: float) -> str:
        summary = (self.result or {}).get("summary") or {}
        if reason == "cancelled":
            status, error = JobStatus.CANCELLED, "cancelled by the user"
        elif reason == "timeout":
            status, error = JobStatus.FAILED, f"timed out: the time limit is {self.job.timeout_s} s"
        elif self.result is not None and returncode == 0:
            status, error = JobStatus.SUCCEEDED, ""
        elif self.error is not None:
            status, error = JobStatus.FAILED, self.error.get("message", "the engine failed")
        else:
            how = f"was killed by signal {-returncode}" if returncode and returncode < 0 else f"exited with {returncode}"
            tail = "\n".join(self.stderr_tail[-STDERR_TAIL:])
            status, error = JobStatus.FAILED, f"the engine process {how} without reporting a result\n{tail}".strip()
        if status == JobStatus.SUCCEEDED and self.job.kind in services.MEASURED_PROFILE_KINDS:
            status, error = self._save_measured_profile(summary)
        self.bridge.on_log(f"job {status} after {elapsed:.1f} s", "runner")
        self.bridge.flush(final=True)
        services.job_finish(job_id=self.job.pk, status=status, error=error, summary=summary)
        return status


    def _save_measured_profile(self, summary: dict[str, Any]) -> tuple[str, str]:
        """A calibration job measured this worker: its profile becomes a measured DeviceProfile (by its name)."""
        from django.core.exceptions import ValidationError

        from runner import costs

        profile = summary.get("profile") if isinstance(summary.get("profile"), dict) else {}
        if not costs.device_profile_writable(str(profile.get("name") or "local")):
            return JobStatus.FAILED, f"not saved: {profile.get('name')!r} is a builtin or hand-edited device profile"
        try:
            row = costs.device_profile_save_measured(profile=profile)
        except ValidationError as exc:
            error = "the calibration measured no usable profile: " + "; ".join(
                f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            return JobStatus.FAILED, error
        self.bridge.on_log(f"saved the measured device profile {row.name!r} ({row.label})", "runner")
        return JobStatus.SUCCEEDED, ""


def engine_spec(job: Job) -> dict[str, Any]:
    """The spec the engine process gets: the stored spec with its checkpoint reference ("<run id>/<path>") turned
    into the absolute path of the artifact file (re-checked here: the file may have gone since the submit)."""
    spec = dict(job.spec)
    if spec.get("checkpoint"):
        spec["checkpoint"] = str(services.checkpoint_resolve(spec["checkpoint"]))
    return spec


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    if sig == signal.SIGKILL:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.error("engine process %s did not die after SIGKILL", proc.pid)
