from django.contrib import admin, messages

from runner import services
from runner.models import DeviceProfile, Job, JobLogLine


@admin.register(DeviceProfile)
class DeviceProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "label", "kind", "bandwidth", "measured", "measured_on", "updated_at")
    list_filter = ("kind", "measured")
    search_fields = ("name", "label", "measured_on")


class JobLogLineInline(admin.TabularInline):
    model = JobLogLine
    fields = ("seq", "stream", "text", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0
    ordering = ("-seq",)

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-seq")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "kind", "status", "queue", "device", "worker_hostname", "progress_step",
                    "progress_total", "dispatched", "created_at", "finished_at")
    list_filter = ("status", "kind", "queue", "dispatched")
    search_fields = ("id", "owner__username", "worker_hostname", "run__name")
    raw_id_fields = ("owner", "run", "retry_of")
    readonly_fields = [f.name for f in Job._meta.fields]  # state changes go through services, never by hand
    actions = ["cancel_jobs", "dispatch_now"]

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request, queryset):
        done = 0
        for job in queryset.filter(status__in=("queued", "running")):
            services.job_cancel(job=job, user=job.owner)
            done += 1
        self.message_user(request, f"Cancel requested for {done} job(s).", messages.SUCCESS)

    @admin.action(description="Dispatch undispatched queued jobs now")
    def dispatch_now(self, request, queryset):
        sent = sum(services.job_dispatch(job_id=job.pk) for job in queryset.filter(status="queued", dispatched=False))
        self.message_user(request, f"Dispatched {sent} job(s).", messages.SUCCESS)
