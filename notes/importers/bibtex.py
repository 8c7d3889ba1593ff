"""BibTeX import and export (bibtexparser 1.x). The raw entry is kept on the paper, so export gives it back."""
from __future__ import annotations

import re
import warnings

with warnings.catch_warnings():
    # bibtexparser 1.4 uses pyparsing's deprecated camelCase API; the warnings are noise, not ours to fix.
    warnings.simplefilter("ignore", DeprecationWarning)
    import bibtexparser
    from bibtexparser.bibdatabase import BibDatabase
    from bibtexparser.bparser import BibTexParser
    from bibtexparser.bwriter import BibTexWriter
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from notes import services
from notes.importers.parse import arxiv_id_from
from notes.importers.service import MAX_IMPORT_BYTES, ImportReport, _find_paper
from notes.models import ImportRecord, Paper

_ENTRY_START_RE = re.compile(r"^[ \t]*@(\w+)[ \t]*[{(][ \t]*([^,\s]*)", re.M)


def _raw_entries(text: str) -> dict[str, str]:
    """Raw text of each entry by key (from one ``@type{`` to the next), comments and strings skipped."""
    starts = list(_ENTRY_START_RE.finditer(text))
    out: dict[str, str] = {}
    for i, m in enumerate(starts):
        if m.group(1).lower() in ("comment", "string", "preamble"):
            continue
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        out[m.group(2)] = text[m.start():end].strip() + "\n"
    return out


def _clean(value: str) -> str:
    return " ".join(value.replace("{", "").replace("}", "").split())


def parse_bibtex(text: str) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # see the import above
        return _parse_bibtex(text)


def _parse_bibtex(text: str) -> list[dict]:
    parser = BibTexParser(common_strings=True, ignore_nonstandard_types=False)
    try:
        db = bibtexparser.loads(text, parser=parser)
    except Exception as exc:  # bibtexparser raises pyparsing errors of several types
        raise ValidationError({"file": f"Not valid BibTeX: {exc}"}) from exc
    raw = _raw_entries(text)
    entries = []
    for e in db.entries:
        year = re.search(r"\d{4}", e.get("year", ""))
        arxiv = ""
        if e.get("archiveprefix", "").lower() == "arxiv" or "arxiv" in e.get("journal", "").lower():
            arxiv = _clean(e.get("eprint", "")) or arxiv_id_from(e.get("url", ""))
        arxiv = arxiv or arxiv_id_from(e.get("url", ""))
        entries.append({
            "bibtex_key": e.get("ID", ""),
            "title": _clean(e.get("title", "")),
            "authors": _clean(e.get("author", "")),
            "year": int(year.group(0)) if year else None,
            "venue": _clean(e.get("booktitle") or e.get("journal") or e.get("publisher") or ""),
            "doi": _clean(e.get("doi", "")),
            "url": e.get("url", "").strip() if e.get("url", "").strip().startswith(("http://", "https://")) else "",
            "arxiv_id": re.sub(r"v\d+$", "", arxiv),
            "abstract": e.get("abstract", "").strip(),
            "bibtex": raw.get(e.get("ID", ""), ""),
        })
    return entries


@transaction.atomic
def notes_import_bibtex(*, owner: AbstractBaseUser, text: str, filename: str = "") -> ImportReport:
    """Create papers from BibTeX; a paper already there (arXiv id, DOI, key or title) only gets its empty fields
    filled, so importing twice changes nothing."""
    import hashlib

    if len(text.encode()) > MAX_IMPORT_BYTES:
        raise ValidationError({"file": f"File is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB."})
    report = ImportReport(mode="bibtex")
    for entry in parse_bibtex(text):
        if not entry["title"]:
            report.warnings.append(f"entry {entry['bibtex_key'] or '?'} has no title; skipped")
            continue
        paper = _find_paper(owner, title=entry["title"], arxiv_id=entry["arxiv_id"], doi=entry["doi"],
                            bibtex_key=entry["bibtex_key"])
        if paper is None:
            try:
                with transaction.atomic():  # a savepoint: one bad entry must not undo the others
                    services.paper_create(owner=owner, **{k: v for k, v in entry.items() if v not in ("", None)})
            except ValidationError as exc:
                report.warnings.append(f"entry {entry['bibtex_key'] or entry['title'][:40]}: {'; '.join(exc.messages)}"
                                       "; skipped")
                continue
            report.created["papers"] += 1
            continue
        missing = {k: v for k, v in entry.items() if k != "title" and v not in ("", None) and not getattr(paper, k)}
        if missing:
            services.paper_update(paper=paper, **missing)
            report.merged.setdefault("papers", 0)
            report.merged["papers"] += 1
        else:
            report.unchanged += 1
    record = ImportRecord.objects.create(
        owner=owner, kind="bibtex", filename=filename[:300], sha256=hashlib.sha256(text.encode()).hexdigest(),
        counts={"created": report.created, "merged": report.merged, "unchanged": report.unchanged},
        warnings=report.warnings,
    )
    report.record_id = record.pk
    return report


def paper_to_bibtex(paper: Paper) -> str:
    """The imported raw entry when there is one, else an entry written from the paper's fields."""
    if paper.bibtex.strip():
        return paper.bibtex if paper.bibtex.endswith("\n") else paper.bibtex + "\n"
    entry = {"ENTRYTYPE": "misc" if not paper.venue else "inproceedings",
             "ID": paper.bibtex_key or re.sub(r"[^A-Za-z0-9]", "", paper.slug)[:40] or f"paper{paper.pk}",
             "title": "{" + paper.title + "}"}
    if paper.authors:
        entry["author"] = " and ".join(a.strip() for a in re.split(r"\n| and ", paper.authors) if a.strip())
    if paper.year:
        entry["year"] = str(paper.year)
    if paper.venue:
        entry["booktitle"] = paper.venue
    if paper.doi:
        entry["doi"] = paper.doi
    if paper.url:
        entry["url"] = paper.url
    if paper.arxiv_id:
        entry["eprint"], entry["archiveprefix"] = paper.arxiv_id, "arXiv"
    db = BibDatabase()
    db.entries = [entry]
    return BibTexWriter().write(db)


def papers_to_bibtex(papers) -> str:
    return "\n".join(paper_to_bibtex(p) for p in papers)
