"""Input and output serializers of the notes API (kept apart: inputs validate, outputs present)."""
from __future__ import annotations

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from notes import selectors, services
from notes.models import DailyLog, Digest, LogKind, Paper, PaperStatus, ReadingList, ReadingListItem, Revision, Tag

# --- output serializers -------------------------------------------------------------------------------------------


class TagNamesField(serializers.ListField):
    child = serializers.CharField(max_length=100)

    def to_representation(self, data):
        return [t.name for t in data.all()]


class LogOut(serializers.ModelSerializer):
    tags = TagNamesField(read_only=True)
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    body_html = serializers.SerializerMethodField()
    url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = DailyLog
        fields = ["id", "owner", "kind", "date", "end_date", "title", "heading", "body", "body_html", "tags",
                  "shared", "url", "created_at", "updated_at"]

    def get_body_html(self, obj: DailyLog) -> str:
        return str(selectors.rendered_html(obj, self.context["request"].user))


class PaperOut(serializers.ModelSerializer):
    tags = TagNamesField(read_only=True)
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    url_page = serializers.CharField(source="get_absolute_url", read_only=True)
    url = serializers.CharField(read_only=True, help_text="the paper's web address, or empty")
    slug = serializers.CharField(read_only=True, help_text="from the title; may contain non-ASCII letters")

    class Meta:
        model = Paper
        fields = ["id", "owner", "title", "slug", "authors", "year", "venue", "arxiv_id", "doi", "url", "bibtex_key",
                  "bibtex", "abstract", "status", "priority", "date_read", "tags", "shared", "url_page",
                  "created_at", "updated_at"]


class DigestOut(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    paper_title = serializers.CharField(source="paper.title", read_only=True)
    body_html = serializers.SerializerMethodField()

    class Meta:
        model = Digest
        fields = ["id", "paper", "paper_title", "owner", "body", "body_html", "shared", "created_at", "updated_at"]

    def get_body_html(self, obj: Digest) -> str:
        return str(selectors.rendered_html(obj, self.context["request"].user))


class ReadingListItemOut(serializers.ModelSerializer):
    paper_title = serializers.CharField(source="paper.title", read_only=True)

    class Meta:
        model = ReadingListItem
        fields = ["id", "paper", "paper_title", "order", "note"]


class ReadingListOut(serializers.ModelSerializer):
    items = ReadingListItemOut(many=True, read_only=True)

    class Meta:
        model = ReadingList
        fields = ["id", "title", "description", "shared", "items", "created_at", "updated_at"]


class RevisionOut(serializers.ModelSerializer):
    class Meta:
        model = Revision
        fields = ["id", "log", "digest", "body", "created_at"]


class TagOut(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name"]


class SearchResultOut(serializers.Serializer):
    kind = serializers.CharField()
    obj_id = serializers.IntegerField()
    title = serializers.CharField()
    url = serializers.CharField()
    snippet = serializers.CharField(help_text="escaped HTML, matches in <mark>")
    score = serializers.FloatField()
    date = serializers.DateField(allow_null=True)


ImportReportOut = inline_serializer("ImportReport", {
    "mode": serializers.CharField(), "created": serializers.DictField(child=serializers.IntegerField()),
    "merged": serializers.DictField(child=serializers.IntegerField()), "unchanged": serializers.IntegerField(),
    "warnings": serializers.ListField(child=serializers.CharField()), "record_id": serializers.IntegerField(),
})

# --- input serializers --------------------------------------------------------------------------------------------


class LogIn(serializers.Serializer):
    date = serializers.DateField(required=False, allow_null=True)
    end_date = serializers.DateField(required=False, allow_null=True)
    title = serializers.CharField(required=False, allow_blank=True, max_length=300)
    body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                 max_length=services.MAX_BODY_CHARS)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    shared = serializers.BooleanField(required=False)
    kind = serializers.ChoiceField(choices=LogKind.choices, required=False, default=LogKind.DAY)


class BodyIn(serializers.Serializer):
    body = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=services.MAX_BODY_CHARS)
    shared = serializers.BooleanField(required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False,
                                 help_text="logs only: replaces the log's tags")
    base_version = serializers.DateTimeField(
        required=False, allow_null=True,
        help_text="updated_at of the text you edited; if the stored text is newer the answer is 409 and your text is "
                  "kept as a revision",
    )


class PaperIn(serializers.Serializer):
    title = serializers.CharField(max_length=500)
    authors = serializers.CharField(required=False, allow_blank=True)
    year = serializers.IntegerField(required=False, allow_null=True, min_value=1000, max_value=3000)
    venue = serializers.CharField(required=False, allow_blank=True, max_length=200)
    arxiv_id = serializers.CharField(required=False, allow_blank=True, max_length=50)
    doi = serializers.CharField(required=False, allow_blank=True, max_length=200)
    url = serializers.URLField(required=False, allow_blank=True, max_length=1000)
    bibtex_key = serializers.CharField(required=False, allow_blank=True, max_length=200)
    bibtex = serializers.CharField(required=False, allow_blank=True)
    abstract = serializers.CharField(required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=PaperStatus.choices, required=False)
    priority = serializers.IntegerField(required=False, min_value=-100, max_value=100)
    date_read = serializers.DateField(required=False, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    shared = serializers.BooleanField(required=False)


class ReadingListIn(serializers.Serializer):
    title = serializers.CharField(max_length=300)
    description = serializers.CharField(required=False, allow_blank=True)
    shared = serializers.BooleanField(required=False)


class ReadingListItemIn(serializers.Serializer):
    paper = serializers.IntegerField()
    note = serializers.CharField(required=False, allow_blank=True)


class ReorderIn(serializers.Serializer):
    item_ids = serializers.ListField(child=serializers.IntegerField(), allow_empty=True)


class ImportIn(serializers.Serializer):
    file = serializers.FileField(required=False)
    text = serializers.CharField(required=False, trim_whitespace=False)
    filename = serializers.CharField(required=False, allow_blank=True, max_length=300)
    mode = serializers.ChoiceField(choices=["auto", "journal", "paper_stack"], required=False, default="auto")

    def validate(self, attrs):
        if not attrs.get("file") and not attrs.get("text"):
            raise serializers.ValidationError({"file": "Upload a file or send its text."})
        return attrs


class RenderIn(serializers.Serializer):
    body = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=services.MAX_BODY_CHARS)
