"""Runner models. Job (and its events) are added by the runner; DeviceProfile feeds the hardware-cost estimator."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class DeviceProfile(models.Model):
    """A named hardware target for roofline latency and energy estimates (editable in the admin).

    ``peak_ops`` maps a dtype name ("fp32", "fp16", "bf16", "int8", "int4", ...) to peak operations per second
    (FLOP/s for float types, integer OP/s for integer types). ``bandwidth`` is sustained memory bandwidth in bytes/s.
    ``energy`` optionally overrides the technology table: {"mac": {"fp32": pJ, "int8": pJ, ...}, "dram_byte": pJ, ...}.
    """

    name = models.SlugField(max_length=100, unique=True)
    label = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=[("gpu", "GPU"), ("edge", "Edge GPU/NPU"), ("fpga", "FPGA-like"),
                                                    ("cpu", "CPU")], default="gpu")
    peak_ops = models.JSONField(default=dict)
    bandwidth = models.FloatField(help_text="bytes per second")
    energy = models.JSONField(default=dict, blank=True)
    measured = models.BooleanField(default=False, help_text="measured on a worker by a calibration job")
    measured_on = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.label or self.name

    def as_engine_profile(self) -> dict:
        """The plain dict runner.engine.cost takes (the engine has no Django)."""
        return {"name": self.name, "label": self.label, "kind": self.kind, "peak_ops": dict(self.peak_ops),
                "bandwidth": float(self.bandwidth), "energy": dict(self.energy or {})}


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
FINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.LOST)


class JobQuerySet(models.QuerySet):
    def for_owner(self, user) -> JobQuerySet:
        return self.filter(owner=user)

    def active(self) -> JobQuerySet:
        return self.filter(status__in=ACTIVE_STATUSES)


class Job(models.Model):
    """The source of truth for one piece of work; Celery only carries its id.

    queued → running → succeeded | failed | cancelled | lost. ``spec`` is the engine spec after validation
    (runner.engine.jobs.validate_spec); ``request`` is what the user submitted, kept for "clone and modify".
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    run = models.OneToOneField("experiments.Run", on_delete=models.CASCADE, related_name="job")
    kind = models.CharField(max_length=20)
    spec = models.JSONField(default=dict)
    request = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=20, default="cpu")
    device = models.CharField(max_length=20, default="auto")
    processes = models.PositiveIntegerField(default=1)
    timeout_s = models.PositiveIntegerField(help_text="wall-clock limit in seconds")
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    progress_step = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(null=True, blank=True)
    epoch = models.IntegerField(null=True, blank=True)
    progress_message = models.CharField(max_length=300, blank=True)
    eta_s = models.FloatField(null=True, blank=True, help_text="seconds left, estimated when progress was reported")
    progress_at = models.DateTimeField(null=True, blank=True)
    worker_hostname = models.CharField(max_length=200, blank=True)
    worker_pid = models.IntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    summary = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    dispatched = models.BooleanField(default=False)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    log_line_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "status"]),
            models.Index(fields=["status", "dispatched"]),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.kind}, {self.status})"

    def get_absolute_url(self) -> str:
        return f"/jobs/{self.pk}/"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def elapsed_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or timezone.now()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def eta_now_s(self) -> float | None:
        """ETA as of now: the estimate made at the last progress report, minus the time since."""
        if self.eta_s is None or self.progress_at is None or self.status != JobStatus.RUNNING:
            return None
        return max(0.0, self.eta_s - (timezone.now() - self.progress_at).total_seconds())

    @property
    def percent(self) -> float | None:
        if not self.progress_total:
            return None
        return max(0.0, min(100.0, 100.0 * self.progress_step / self.progress_total))


class JobLogLine(models.Model):
    """One line of a job's log: the engine's messages and the captured stdout/stderr of its process."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_lines")
    seq = models.PositiveIntegerField()
    stream = models.CharField(max_length=10, default="engine")  # engine | stdout | stderr | runner
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["job", "seq"]
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="joblogline_job_seq_unique")]

    def __str__(self) -> str:
        return f"{self.job_id}:{self.seq} {self.text[:60]}"
