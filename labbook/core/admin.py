from django.contrib import admin

from labbook.core.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at")
    list_filter = ("created_at",)
    search_fields = ("name", "user__username", "prefix")
    readonly_fields = ("digest", "prefix", "created_at", "last_used_at")
