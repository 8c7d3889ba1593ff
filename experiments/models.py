"""Experiment tracking: projects, runs (with lineage), metric series and artifacts."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Project(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "slug"], name="project_owner_slug_unique")]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"


class RunKind(models.TextChoices):
    """Where a run sits in the train → prune → quantize lineage (``parent`` points one step back)."""

    TRAIN = "train"
    PRUNE = "prune"
    QUANTIZE = "quantize"
    ESTIMATE = "estimate"
    MEASURE = "measure"
    OTHER = "other"


class Run(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=200)
    # Chosen by the Python client (a UUID) so that creating a run is idempotent: a retried create, or uploading the
    # same offline file twice, returns the run made the first time instead of a second one.
    client_id = models.CharField(max_length=64, blank=True, default="")
    kind = models.CharField(max_length=20, choices=RunKind.choices, default=RunKind.OTHER)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.RUNNING, db_index=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    config = models.JSONField(default=dict, blank=True)  # as the user wrote it (YAML/JSON), nested
    params = models.JSONField(default=dict, blank=True)  # flattened: {"optim.lr": 0.1, ...}, scalars only
    tags = models.JSONField(default=list, blank=True)  # ["w4a4", "resnet20"]
    notes = models.TextField(blank=True)  # Markdown
    git_commit = models.CharField(max_length=64, blank=True)
    git_dirty = models.BooleanField(null=True, blank=True)
    command = models.TextField(blank=True)
    environment = models.JSONField(default=dict, blank=True)  # python, torch, cuda, host, ...
    device = models.CharField(max_length=100, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    # {"acc": {"last": 0.91, "last_step": 99, "min": ..., "max": ..., "best": 0.93, "best_step": 80, "count": 100}}
    metric_summary = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"])]
        constraints = [
            models.UniqueConstraint(fields=["owner", "client_id"], condition=~models.Q(client_id=""),
                                    name="run_owner_client_id_unique"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name}"

    def get_absolute_url(self) -> str:
        return f"/runs/{self.pk}/"


class RunTag(models.Model):
    """One row per (run, tag), kept in sync with ``Run.tags`` by the services.

    Why a table next to the JSON list: "tag = x" must be an indexed lookup that works the same on PostgreSQL and
    SQLite (SQLite has no JSON ``contains``), and tag clouds / bulk tagging become plain queries.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tag_rows")
    name = models.CharField(max_length=100, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="runtag_run_name_unique")]

    def __str__(self) -> str:
        return self.name


class MetricPoint(models.Model):
    """One point of a series. (run, key, step) is the primary key: a retried batch stores nothing twice.

    No surrogate id: it would cost each of the millions of points 8 bytes, a sequence draw and a second B-tree
    insertion (~25% of a batch's COPY, a third of its WAL), for a row nothing ever addresses alone.
    """

    pk = models.CompositePrimaryKey("run_id", "key", "step")

    # No separate run_id index: the (run, key, step) primary key starts with run_id and serves those lookups, and
    # every index costs each of the millions of inserted points a B-tree insertion.
    # No database foreign key either: PostgreSQL checks one per inserted row (a trigger each, deferred to COMMIT by
    # Django: a quarter of the cost of a 10,000-point batch). Integrity is kept another way: the only writer
    # (metric_store, under services.metrics_ingest) holds the run's row lock, so the run exists and can't be deleted
    # until the points are committed, and a database trigger deletes a run's points with the run (migration 0004),
    # so no point outlives its run whatever deletes it (the ORM, the admin, raw SQL).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_points", db_index=False,
                            db_constraint=False)
    # On PostgreSQL the column is COLLATE "C" (migration 0006, outside the model state): an AlterField of it must
    # keep that collation.
    key = models.CharField(max_length=200)
    step = models.BigIntegerField()
    value = models.FloatField()
    wall_time = models.FloatField(help_text="seconds since the epoch, as measured by the logger")

    def __str__(self) -> str:
        return f"{self.key}@{self.step}={self.value}"


class MetricRollup(models.Model):
    """Min, max, last point and count of one block of a series: the points of (run, key) with
    ``step // ROLLUP_BLOCK_SIZES[level] == block``.

    Maintained by ``services.metrics_ingest`` on PostgreSQL in the same statement that inserts the points, from the
    points that were actually new, so re-sent batches change nothing; points are never updated or deleted one by one
    (only with their run), so min/max/last/count merge exactly. A chart read of a long series then aggregates ~10^4
    block rows and only the raw points of the blocks cut by its bucket edges, instead of every point
    (``selectors.series_downsampled``). The extreme points are kept with their steps and wall times, so the read
    returns the very same points as a pass over the raw series.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_rollups", db_index=False)
    key = models.CharField(max_length=200)
    level = models.PositiveSmallIntegerField()
    block = models.BigIntegerField()
    count = models.BigIntegerField()
    min_value = models.FloatField()
    min_step = models.BigIntegerField()
    min_wall = models.FloatField()
    max_value = models.FloatField()
    max_step = models.BigIntegerField()
    max_wall = models.FloatField()
    last_step = models.BigIntegerField()
    last_value = models.FloatField()
    last_wall = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key", "level", "block"],
                                               name="rollup_run_key_level_block_unique")]

    def __str__(self) -> str:
        return f"{self.key}[{self.level}:{self.block}] n={self.count}"


# Points per block at each rollup level (level 0 = 32 steps, level 1 = 1,024 steps).
ROLLUP_BLOCK_SIZES = (32, 1024)


class Artifact(models.Model):
    """A file under settings.ARTIFACT_ROOT/<run id>/<path>; ``path`` is relative and validated (no traversal)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="artifacts")
    path = models.CharField(max_length=500)
    kind = models.CharField(max_length=50, blank=True)  # checkpoint, cost-report, log, plot, other
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["path"]
        constraints = [models.UniqueConstraint(fields=["run", "path"], name="artifact_run_path_unique")]

    def __str__(self) -> str:
        return self.path
