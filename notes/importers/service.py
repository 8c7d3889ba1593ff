"""Import services: parsed Markdown / BibTeX → logs, notes, papers, digests. Idempotent through content hashes."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from notes import services
from notes.importers.parse import Section, parse_markdown
from notes.models import DailyLog, Digest, ImportedChunk, ImportRecord, LogKind, Paper, PaperStatus

MAX_IMPORT_BYTES = 10 * 1024 * 1024  # a decade of daily writing is ~5 MB


@dataclass
class ImportReport:
    mode: str
    created: dict[str, int] = field(default_factory=lambda: {"logs": 0, "notes": 0, "papers": 0, "digests": 0})
    merged: dict[str, int] = field(default_factory=lambda: {"logs": 0, "digests": 0})
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)
    record_id: int | None = None

    def as_dict(self) -> dict:
        return {"mode": self.mode, "created": self.created, "merged": self.merged, "unchanged": self.unchanged,
                "warnings": self.warnings, "record_id": self.record_id}

    def summary(self) -> str:
        made = ", ".join(f"{n} {k}" for k, n in self.created.items())
        merged = ", ".join(f"{n} {k}" for k, n in self.merged.items() if n)
        return (f"{self.mode}: created {made}" + (f"; merged into existing {merged}" if merged else "")
                + f"; {self.unchanged} already imported; {len(self.warnings)} warning(s)")


def _claim_chunk(owner: AbstractBaseUser, *parts: str) -> bool:
    """True the first time this content is imported for this owner; False when it was imported before."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    _, created = ImportedChunk.objects.get_or_create(owner=owner, sha256=digest)
    return created


def _join(existing: str, addition: str) -> str:
    if not existing.strip():
        return addition
    return existing.rstrip("\n") + "\n\n" + addition


def _find_paper(owner: AbstractBaseUser, *, title: str, arxiv_id: str = "", doi: str = "",
                bibtex_key: str = "") -> Paper | None:
    papers = Paper.objects.filter(owner=owner)
    if arxiv_id and (p := papers.filter(arxiv_id__iexact=arxiv_id).first()):
        return p
    if doi and (p := papers.filter(doi__iexact=doi).first()):
        return p
    if bibtex_key and (p := papers.filter(bibtex_key=bibtex_key).first()):
        return p
    norm = " ".join(title.split())
    return papers.filter(title__iexact=norm).first() if norm else None


def _import_log(owner, sec: Section, report: ImportReport) -> None:
    body = sec.body
    if not _claim_chunk(owner, "log", sec.date.isoformat(), sec.heading, body):
        report.unchanged += 1
        return
    log = DailyLog.objects.filter(owner=owner, kind=LogKind.DAY, date=sec.date).first()
    if log is None:
        services.log_save(owner=owner, date=sec.date, body=body, end_date=sec.end_date, title=sec.title)
        DailyLog.objects.filter(owner=owner, kind=LogKind.DAY, date=sec.date).update(heading=sec.heading[:500])
        report.created["logs"] += 1
    else:
        # Repeated date (in this file or an earlier import): append, never replace what is there.
        services.log_update(
            log=log, body=_join(log.body, body), title=log.title or sec.title,
            end_date=sec.end_date if sec.end_date and (not log.end_date or sec.end_date > log.end_date) else None,
            heading=log.heading or sec.heading,
        )
        report.merged["logs"] += 1


def _import_note(owner, sec: Section, report: ImportReport, tags: list[str]) -> None:
    body = sec.body
    if not _claim_chunk(owner, "note", sec.title, sec.heading, body):
        report.unchanged += 1
        return
    services.note_create(owner=owner, title=sec.title, body=body, heading=sec.heading, tags=tags)
    report.created["notes"] += 1


def _import_paper(owner, sec: Section, report: ImportReport) -> None:
    body = sec.body
    paper = _find_paper(owner, title=sec.title, arxiv_id=sec.arxiv_id)
    if paper is None:
        paper = services.paper_create(
            owner=owner, title=sec.title, url=sec.url if sec.url.startswith(("http://", "https://")) else "",
            arxiv_id=sec.arxiv_id, tags=sec.tags,
            status=PaperStatus.READ if body.strip() else PaperStatus.TO_READ,
        )
        report.created["papers"] += 1
    if not body.strip() or not _claim_chunk(owner, "digest", str(paper.pk), body):
        if body.strip():
            report.unchanged += 1
        return
    digest = Digest.objects.filter(paper=paper, owner=owner).first()
    if digest is None:
        services.digest_save(paper=paper, owner=owner, body=body)
        report.created["digests"] += 1
    elif body.strip() not in digest.body:
        services.digest_save(paper=paper, owner=owner, body=_join(digest.body, body))
        report.merged["digests"] += 1


@transaction.atomic
def notes_import_markdown(*, owner: AbstractBaseUser, text: str, filename: str = "",
                          mode: str = "auto") -> ImportReport:
    """Import a Markdown journal or paper stack. Importing the same text again creates and changes nothing."""
    if len(text.encode()) > MAX_IMPORT_BYTES:
        raise ValidationError({"file": f"File is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB."})
    if mode not in ("auto", "journal", "paper_stack"):
        raise ValidationError({"mode": "Choose auto, journal or paper_stack."})
    doc = parse_markdown(text, mode, filename)
    report = ImportReport(mode=doc.mode, warnings=list(doc.warnings))
    fm_tags = doc.meta.get("tags") if isinstance(doc.meta.get("tags"), list) else []
    for sec in doc.sections:
        if sec.kind == "log":
            _import_log(owner, sec, report)
        elif sec.kind in ("note", "preamble"):
            _import_note(owner, sec, report, tags=[str(t) for t in fm_tags] if sec.kind == "preamble" else [])
        elif sec.kind == "paper":
            _import_paper(owner, sec, report)
    record = ImportRecord.objects.create(
        owner=owner, kind=doc.mode, filename=filename[:300], sha256=hashlib.sha256(text.encode()).hexdigest(),
        front_matter=doc.front_matter, counts={"created": report.created, "merged": report.merged,
                                               "unchanged": report.unchanged},
        warnings=report.warnings,
    )
    report.record_id = record.pk
    return report
