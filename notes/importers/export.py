"""Export of a user's notes to Markdown files in a zip.

Layout: ``logs/<date>.md`` (the stored body, byte for byte), ``notes/<id>-<slug>.md`` (body, byte for byte),
``digests/<paper slug>.md``, ``papers.bib``, ``papers.md`` (a paper stack), ``journal.md`` (every log under its
heading, newest first: importable again) and ``manifest.json`` (what each file holds, with titles, tags, dates).
"""
from __future__ import annotations

import io
import json
import zipfile

from django.contrib.auth.base_user import AbstractBaseUser
from django.utils.text import slugify

from notes.importers.bibtex import papers_to_bibtex
from notes.models import DailyLog, Digest, LogKind, Paper, ReadingList


def _heading(log: DailyLog) -> str:
    if log.heading:
        return log.heading
    if log.kind == LogKind.NOTE:
        return f"## {log.title or 'Note'}"
    return f"## {log.date_label}" + (f" {log.title}" if log.title else "")


def notes_export_zip(*, owner: AbstractBaseUser) -> bytes:
    buf = io.BytesIO()
    manifest: dict[str, list] = {"logs": [], "notes": [], "digests": [], "reading_lists": []}
    logs = list(DailyLog.objects.filter(owner=owner).prefetch_related("tags").order_by("kind", "-date", "id"))
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        journal: list[str] = []
        for log in logs:
            tags = [t.name for t in log.tags.all()]
            if log.kind == LogKind.DAY:
                name = f"logs/{log.date.isoformat()}.md"
                manifest["logs"].append({"file": name, "date": log.date.isoformat(), "title": log.title,
                                         "end_date": log.end_date.isoformat() if log.end_date else None,
                                         "heading": log.heading, "tags": tags, "shared": log.shared})
            else:
                name = f"notes/{log.pk}-{slugify(log.title, allow_unicode=True)[:60] or 'note'}.md"
                manifest["notes"].append({"file": name, "title": log.title, "heading": log.heading, "tags": tags})
            zf.writestr(name, log.body.encode())
            journal.append(_heading(log) + "\n\n" + log.body.rstrip("\n") + "\n")
        zf.writestr("journal.md", "\n".join(journal).encode())
        papers = list(Paper.objects.filter(owner=owner).prefetch_related("tags").order_by("-created_at", "-id"))
        zf.writestr("papers.bib", papers_to_bibtex(papers).encode())
        stack: list[str] = []
        digests = {d.paper_id: d for d in Digest.objects.filter(owner=owner)}
        for paper in papers:
            stack.append(f"* [{paper.title}]({paper.url})")
            digest = digests.get(paper.pk)
            if digest:
                name = f"digests/{paper.slug}.md"
                zf.writestr(name, digest.body.encode())
                manifest["digests"].append({"file": name, "paper": paper.title, "paper_id": paper.pk})
                stack.extend("  " + line if line else "" for line in digest.body.rstrip("\n").split("\n"))
            stack.append("")
        zf.writestr("papers.md", "\n".join(stack).encode())
        for rl in ReadingList.objects.filter(owner=owner).prefetch_related("items__paper"):
            manifest["reading_lists"].append({
                "title": rl.title, "description": rl.description,
                "items": [{"paper": i.paper.title, "note": i.note} for i in rl.items.all()],
            })
        zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2).encode())
    return buf.getvalue()
