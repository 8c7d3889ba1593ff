from __future__ import annotations

from django.contrib import admin

from notes import services
from notes.models import (
    DailyLog,
    Digest,
    DigestTemplate,
    ImportedChunk,
    ImportRecord,
    Link,
    Paper,
    ReadingList,
    ReadingListItem,
    Revision,
    Tag,
)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "owner"]
    list_filter = ["owner"]
    search_fields = ["name"]


@admin.register(DailyLog)
class DailyLogAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", "date", "end_date", "title", "owner", "shared", "updated_at"]
    list_filter = ["kind", "shared", "owner", "date"]
    search_fields = ["title", "body", "heading"]
    date_hierarchy = "date"
    readonly_fields = ["body_html", "created_at", "updated_at"]
    filter_horizontal = ["tags"]

    def save_model(self, request, obj, form, change):
        # Through the service, so the HTML, links, revision and search index follow the body.
        super().save_model(request, obj, form, change)
        services.log_update(log=obj)


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin):
    list_display = ["title", "year", "venue", "status", "priority", "arxiv_id", "owner", "shared"]
    list_filter = ["status", "shared", "year", "owner"]
    search_fields = ["title", "authors", "venue", "arxiv_id", "doi", "bibtex_key"]
    prepopulated_fields = {"slug": ["title"]}
    filter_horizontal = ["tags"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.search_index_sync(kind="paper", obj=obj)  # keep SQLite's FTS table in step with admin edits


@admin.register(Digest)
class DigestAdmin(admin.ModelAdmin):
    list_display = ["paper", "owner", "shared", "updated_at"]
    list_filter = ["shared", "owner"]
    search_fields = ["body", "paper__title"]
    readonly_fields = ["body_html"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.digest_save(paper=obj.paper, owner=obj.owner, body=obj.body)


@admin.register(DigestTemplate)
class DigestTemplateAdmin(admin.ModelAdmin):
    list_display = ["owner", "updated_at"]
    search_fields = ["owner__username", "body"]


class ReadingListItemInline(admin.TabularInline):
    model = ReadingListItem
    extra = 0
    raw_id_fields = ["paper"]


@admin.register(ReadingList)
class ReadingListAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "shared", "updated_at"]
    list_filter = ["shared", "owner"]
    search_fields = ["title", "description"]
    inlines = [ReadingListItemInline]


@admin.register(ReadingListItem)
class ReadingListItemAdmin(admin.ModelAdmin):
    list_display = ["reading_list", "paper", "order", "note"]
    list_filter = ["reading_list"]
    search_fields = ["note", "paper__title"]
    raw_id_fields = ["paper"]


@admin.register(Link)
class LinkAdmin(admin.ModelAdmin):
    list_display = ["__str__", "target_kind", "target_key", "owner"]
    list_filter = ["target_kind", "owner"]
    search_fields = ["target_key"]
    raw_id_fields = ["source_log", "source_digest"]


@admin.register(Revision)
class RevisionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "created_at"]
    list_filter = ["owner", "created_at"]
    search_fields = ["body"]
    raw_id_fields = ["log", "digest"]


@admin.register(ImportRecord)
class ImportRecordAdmin(admin.ModelAdmin):
    list_display = ["kind", "filename", "owner", "created_at"]
    list_filter = ["kind", "owner"]
    search_fields = ["filename", "sha256"]


@admin.register(ImportedChunk)
class ImportedChunkAdmin(admin.ModelAdmin):
    list_display = ["sha256", "owner", "created_at"]
    list_filter = ["owner"]
    search_fields = ["sha256"]
