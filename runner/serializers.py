"""API input and output shapes for jobs. Input is checked by runner.services.spec_prepare (one place, messages that
name the field and list allowed values); the input serializer documents the fields for /api/schema/."""
from __future__ import annotations

from rest_framework import serializers

from runner.models import Job, JobLogLine


class JobSubmitIn(serializers.Serializer):
    kind = serializers.CharField(help_text="train | prune | quantize | estimate | measure")
    model = serializers.CharField(required=False, help_text="a name from GET /api/jobs/options/")
    dataset = serializers.CharField(required=False, help_text="a name from GET /api/jobs/options/")
    hyperparameters = serializers.DictField(required=False, help_text="engine hyperparameters (epochs, lr, ...)")
    parent_run = serializers.IntegerField(required=False, help_text="run to start from (its newest checkpoint)")
    checkpoint = serializers.CharField(required=False, help_text="'<run id>/<artifact path>' of your checkpoint")
    device = serializers.CharField(required=False, default="auto", help_text="auto | cpu | cuda")
    processes = serializers.IntegerField(required=False, default=1, help_text="DDP processes (gloo on CPU)")
    queue = serializers.CharField(required=False, help_text="cpu | gpu (default: from device)")
    timeout = serializers.IntegerField(required=False, help_text="wall-clock limit in seconds")
    seed = serializers.IntegerField(required=False)
    project = serializers.CharField(required=False, default="default")
    name = serializers.CharField(required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)


class JobOut(serializers.ModelSerializer):
    url = serializers.CharField(source="get_absolute_url", read_only=True)
    run_url = serializers.SerializerMethodField()
    run_name = serializers.CharField(source="run.name", read_only=True)
    progress = serializers.SerializerMethodField()
    eta_s = serializers.FloatField(source="eta_now_s", read_only=True, allow_null=True)
    elapsed_s = serializers.FloatField(read_only=True, allow_null=True)
    stream_url = serializers.SerializerMethodField()
    log_url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id", "url", "run", "run_url", "run_name", "kind", "status", "queue", "device", "processes", "timeout_s",
            "spec", "request", "progress", "eta_s", "elapsed_s", "worker_hostname", "worker_pid", "heartbeat_at",
            "attempts", "error", "summary", "cancel_requested", "dispatched", "dispatched_at", "celery_task_id",
            "retry_of", "created_at", "started_at", "finished_at", "stream_url", "log_url",
        ]
        read_only_fields = fields

    def get_run_url(self, job: Job) -> str:
        return f"/runs/{job.run_id}/"

    def get_progress(self, job: Job) -> dict:
        return {"step": job.progress_step, "total": job.progress_total, "epoch": job.epoch,
                "message": job.progress_message, "percent": job.percent}

    def get_stream_url(self, job: Job) -> str:
        return f"/stream/runs/{job.run_id}/"

    def get_log_url(self, job: Job) -> str:
        return f"/api/jobs/{job.pk}/log/"


class JobSubmitOut(serializers.Serializer):
    job = JobOut()
    message = serializers.CharField()


class JobLogLineOut(serializers.ModelSerializer):
    class Meta:
        model = JobLogLine
        fields = ["seq", "stream", "text", "created_at"]


class JobLogOut(serializers.Serializer):
    lines = JobLogLineOut(many=True)
    next_after = serializers.IntegerField(help_text="pass as ?after= to get the lines after these")
    status = serializers.CharField()


class JobOptionsOut(serializers.Serializer):
    kind = serializers.ListField(child=serializers.CharField())
    model = serializers.ListField(child=serializers.CharField())
    dataset = serializers.ListField(child=serializers.CharField())
    device = serializers.ListField(child=serializers.CharField())
    queue = serializers.ListField(child=serializers.CharField())
