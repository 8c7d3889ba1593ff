"""Notes: daily logs (and undated notes), papers with digests, reading lists, tags, links and revisions.

Markdown is stored verbatim in ``body`` (export gives it back byte for byte); ``body_html`` is the sanitised rendering
produced by ``notes.services`` on every save (never by signals). Everything is private to its owner unless ``shared``.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

User = settings.AUTH_USER_MODEL


class Tag(models.Model):
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="note_tags")
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="tag_owner_name_unique")]

    def __str__(self) -> str:
        return self.name


class LogKind(models.TextChoices):
    DAY = "day", "daily log"
    NOTE = "note", "undated note"


class DailyLog(models.Model):
    """A day's log (``kind=day``, one per owner and date, optional ``end_date`` for ranges) or an undated note."""

    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="daily_logs")
    kind = models.CharField(max_length=10, choices=LogKind.choices, default=LogKind.DAY)
    date = models.DateField(null=True, blank=True, db_index=True)
    end_date = models.DateField(null=True, blank=True)
    title = models.CharField(max_length=300, blank=True)
    # The heading line this entry was imported from (e.g. "## 2021-5-8 ~ 2021-5-11"), so export can restore it.
    heading = models.CharField(max_length=500, blank=True)
    body = models.TextField(blank=True)
    body_html = models.TextField(blank=True, editable=False)
    tags = models.ManyToManyField(Tag, blank=True, related_name="logs")
    shared = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-date", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "date"], condition=models.Q(kind="day"), name="dailylog_owner_date_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(kind="note") | models.Q(date__isnull=False), name="dailylog_day_has_date"
            ),
        ]

    def __str__(self) -> str:
        if self.kind == LogKind.NOTE:
            return self.title or f"note {self.pk}"
        return self.date_label

    def get_absolute_url(self) -> str:
        if self.kind == LogKind.DAY and self.date:
            return f"/logs/{self.date.isoformat()}/"
        return f"/logs/notes/{self.pk}/"

    @property
    def date_label(self) -> str:
        if not self.date:
            return self.title
        if self.end_date and self.end_date != self.date:
            return f"{self.date.isoformat()} ~ {self.end_date.isoformat()}"
        return self.date.isoformat()


class PaperStatus(models.TextChoices):
    TO_READ = "to_read", "to read"
    READING = "reading", "reading"
    READ = "read", "read"


class Paper(models.Model):
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="papers")
    title = models.CharField(max_length=500)
    slug = models.SlugField(max_length=200, allow_unicode=True)
    authors = models.TextField(blank=True, help_text="one per line, or as BibTeX writes them ('A and B')")
    year = models.PositiveIntegerField(null=True, blank=True)
    venue = models.CharField(max_length=200, blank=True)
    arxiv_id = models.CharField(max_length=50, blank=True, db_index=True)
    doi = models.CharField(max_length=200, blank=True, db_index=True)
    url = models.URLField(max_length=1000, blank=True)
    bibtex_key = models.CharField(max_length=200, blank=True)
    bibtex = models.TextField(blank=True, help_text="the raw BibTeX entry as imported")
    abstract = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=PaperStatus.choices, default=PaperStatus.TO_READ, db_index=True)
    priority = models.SmallIntegerField(default=0, help_text="higher reads first")
    date_read = models.DateField(null=True, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="papers")
    shared = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["owner", "slug"], name="paper_owner_slug_unique")]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return f"/papers/{self.pk}/"


class DigestTemplate(models.Model):
    """Per-user Markdown a new digest starts from (editable on the paper page and through the API)."""

    owner = models.OneToOneField(User, on_delete=models.CASCADE, related_name="digest_template")
    body = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"digest template of {self.owner}"


class Digest(models.Model):
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="digests")
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="digests")
    body = models.TextField(blank=True)
    body_html = models.TextField(blank=True, editable=False)
    shared = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [models.UniqueConstraint(fields=["paper", "owner"], name="digest_paper_owner_unique")]

    def __str__(self) -> str:
        return f"digest of {self.paper}"

    def get_absolute_url(self) -> str:
        return f"/papers/{self.paper_id}/"


class ReadingList(models.Model):
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="reading_lists")
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    shared = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return f"/reading-lists/{self.pk}/"


class ReadingListItem(models.Model):
    reading_list = models.ForeignKey(ReadingList, on_delete=models.CASCADE, related_name="items")
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="reading_list_items")
    order = models.PositiveIntegerField(default=0)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["reading_list", "paper"], name="readinglistitem_list_paper_unique")
        ]

    def __str__(self) -> str:
        return f"{self.reading_list}: {self.paper}"


class TargetKind(models.TextChoices):
    RUN = "run"
    PAPER = "paper"
    LOG = "log"


class Link(models.Model):
    """A ``[[kind:key]]`` found in a log or digest, extracted on save; backlinks are the reverse query.

    ``target_key`` is the normalised key (run id, paper id, ISO date); ``owner`` is the source's owner, which is also
    whose papers and logs the key was resolved against.
    """

    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="note_links")
    source_log = models.ForeignKey(DailyLog, null=True, blank=True, on_delete=models.CASCADE, related_name="links")
    source_digest = models.ForeignKey(Digest, null=True, blank=True, on_delete=models.CASCADE, related_name="links")
    target_kind = models.CharField(max_length=10, choices=TargetKind.choices)
    target_key = models.CharField(max_length=200)

    class Meta:
        indexes = [models.Index(fields=["target_kind", "target_key"])]

    def __str__(self) -> str:
        return f"{self.source_log or self.source_digest} -> {self.target_kind}:{self.target_key}"

    @property
    def source(self) -> DailyLog | Digest:
        return self.source_log or self.source_digest  # type: ignore[return-value]


class Revision(models.Model):
    """Every save of a log or digest body keeps one, so nothing typed is lost and any edit can be undone."""

    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="note_revisions")
    log = models.ForeignKey(DailyLog, null=True, blank=True, on_delete=models.CASCADE, related_name="revisions")
    digest = models.ForeignKey(Digest, null=True, blank=True, on_delete=models.CASCADE, related_name="revisions")
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"revision {self.pk} of {self.log or self.digest}"


class ImportRecord(models.Model):
    """One import run: what came in, what it created, what it warned about (and the file's front matter)."""

    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="note_imports")
    kind = models.CharField(max_length=20)  # journal, paper_stack, bibtex
    filename = models.CharField(max_length=300, blank=True)
    sha256 = models.CharField(max_length=64)
    front_matter = models.TextField(blank=True)
    counts = models.JSONField(default=dict)
    warnings = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} import {self.filename}"


class ImportedChunk(models.Model):
    """Content hashes of imported pieces: importing the same text twice appends nothing (idempotent import)."""

    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="imported_chunks")
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "sha256"], name="importedchunk_owner_sha_unique")]

    def __str__(self) -> str:
        return self.sha256[:12]
