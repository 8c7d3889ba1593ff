"""Input and output serializers of the experiments API (kept apart: inputs validate, outputs describe)."""
from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from experiments.models import Artifact, Project, Run, RunKind, RunStatus


class ProjectIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class ProjectOut(serializers.ModelSerializer):
    run_count = serializers.IntegerField(read_only=True, required=False)
    slug = serializers.CharField(read_only=True, help_text="from the name; may contain non-ASCII letters")

    class Meta:
        model = Project
        fields = ["id", "name", "slug", "description", "created_at", "run_count"]


class RunCreateIn(serializers.Serializer):
    project = serializers.CharField(max_length=200, default="default", help_text="project name; created if new")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=RunKind.choices, default=RunKind.OTHER)
    status = serializers.ChoiceField(choices=RunStatus.choices, default=RunStatus.RUNNING)
    config = serializers.DictField(required=False, default=dict)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list,
                                 max_length=100)
    parent = serializers.IntegerField(required=False, allow_null=True, default=None, help_text="id of the parent run")
    notes = serializers.CharField(required=False, allow_blank=True, default="")
    git_commit = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    git_dirty = serializers.BooleanField(required=False, allow_null=True, default=None)
    command = serializers.CharField(required=False, allow_blank=True, default="", max_length=20000)
    environment = serializers.DictField(required=False, default=dict)
    device = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    seed = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=-(2**63),
                                    max_value=2**63 - 1)
    client_id = serializers.RegexField(r"^[A-Za-z0-9_\-]{0,64}$", required=False, allow_blank=True, default="",
                                       help_text="idempotency key chosen by the client: creating twice returns the "
                                                 "first run")
    started_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class RunUpdateIn(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    notes = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=100)
    kind = serializers.ChoiceField(choices=RunKind.choices, required=False)
    parent = serializers.IntegerField(required=False, allow_null=True)
    ended_at = serializers.DateTimeField(required=False)


class RunsBulkIn(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=1000)
    action = serializers.ChoiceField(choices=["tag", "untag", "delete"])
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)

    def validate(self, attrs):
        if attrs["action"] in ("tag", "untag") and not attrs["tags"]:
            raise serializers.ValidationError({"tags": ["Give at least one tag."]})
        return attrs


class ProjectBrief(serializers.ModelSerializer):
    slug = serializers.CharField(read_only=True, help_text="from the name; may contain non-ASCII letters")

    class Meta:
        model = Project
        fields = ["id", "name", "slug"]


class RunListOut(serializers.ModelSerializer):
    project = ProjectBrief(read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["id", "name", "project", "kind", "status", "parent", "tags", "params", "metric_summary",
                  "created_at", "started_at", "ended_at", "url"]

    def get_url(self, run: Run) -> str:
        return run.get_absolute_url()


class RunOut(RunListOut):
    class Meta(RunListOut.Meta):
        fields = [*RunListOut.Meta.fields, "config", "notes", "git_commit", "git_dirty", "command", "environment",
                  "device", "seed", "client_id", "updated_at"]


class ArtifactOut(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Artifact
        fields = ["id", "path", "kind", "size", "sha256", "meta", "created_at", "download_url"]

    def get_download_url(self, artifact: Artifact) -> str:
        return reverse("api-run-artifact-file", kwargs={"pk": artifact.run_id, "path": artifact.path})


class ArtifactUploadIn(serializers.Serializer):
    file = serializers.FileField()
    path = serializers.CharField(required=False, help_text="relative path under the run (default: the file name)")
    kind = serializers.CharField(required=False, max_length=50, default="")


class MetricPointIn(serializers.Serializer):
    key = serializers.CharField()
    step = serializers.IntegerField(min_value=0)
    value = serializers.FloatField()
    wall_time = serializers.FloatField(required=False)


class MetricSeriesIn(serializers.Serializer):
    key = serializers.CharField()
    steps = serializers.ListField(child=serializers.IntegerField(min_value=0))
    values = serializers.ListField(child=serializers.FloatField())
    wall_times = serializers.ListField(child=serializers.FloatField(), required=False)


class MetricsBatchIn(serializers.Serializer):
    """Documentation only: the endpoint validates in a tight loop (see experiments.ingest)."""

    points = MetricPointIn(many=True, required=False)
    series = MetricSeriesIn(many=True, required=False)


class MetricsBatchOut(serializers.Serializer):
    received = serializers.IntegerField()
    stored = serializers.IntegerField()
    duplicates = serializers.IntegerField()


class SeriesOut(serializers.Serializer):
    key = serializers.CharField()
    steps = serializers.ListField(child=serializers.IntegerField())
    values = serializers.ListField(child=serializers.FloatField())
    wall_times = serializers.ListField(child=serializers.FloatField())
    count = serializers.IntegerField()
    downsampled = serializers.BooleanField()


class SeriesResponseOut(serializers.Serializer):
    run = serializers.IntegerField()
    x = serializers.CharField()
    series = SeriesOut(many=True)


class RawPageOut(serializers.Serializer):
    key = serializers.CharField()
    points = serializers.ListField(child=serializers.ListField())
    next_after_step = serializers.IntegerField(allow_null=True)
