from __future__ import annotations

from django.contrib import admin

from experiments import services
from experiments.models import Artifact, Project, Run


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "owner", "created_at"]
    list_filter = ["owner"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "project", "owner", "kind", "status", "created_at", "ended_at"]
    list_select_related = ["project", "owner"]
    list_filter = ["status", "kind", "project", "owner"]
    search_fields = ["name", "notes", "git_commit", "client_id"]
    raw_id_fields = ["parent", "project", "owner"]
    date_hierarchy = "created_at"
    readonly_fields = ["metric_summary", "params", "created_at", "updated_at", "client_id"]

    # Through the services, so that the tag table follows the tags list and deleting removes the artifact files.
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.run_update(run=obj, tags=list(obj.tags or []))

    def delete_model(self, request, obj):
        services.run_delete(run=obj)

    def delete_queryset(self, request, queryset):
        for run in queryset:
            services.run_delete(run=run)


# Metric points have no admin page: Django's admin can't list a model with a composite primary key, and millions of
# points are better read where they are drawn: the run page's charts, the series API's raw pages
# (GET /api/runs/<id>/series/<key>/raw/) and the CSV export (/runs/<id>/series.csv). The run's admin page shows its metric summary.


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ["path", "run", "kind", "size", "sha256", "created_at"]
    list_select_related = ["run"]
    list_filter = ["kind"]
    search_fields = ["path", "sha256"]
    raw_id_fields = ["run"]
