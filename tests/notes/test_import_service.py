"""Importing into the database: nothing lost, idempotent, merged, exported back byte for byte."""
from __future__ import annotations

import datetime as dt
import io
import re
import zipfile

import pytest
from django.core.management import call_command

from notes.importers.export import notes_export_zip
from notes.importers.parse import split_front_matter
from notes.importers.service import notes_import_markdown
from notes.models import DailyLog, Digest, ImportRecord, LogKind, Paper

pytestmark = pytest.mark.django_db


def _corpus(owner) -> str:
    """All text the import stored for ``owner``: logs (heading, title, body), papers, digests, front matter."""
    parts: list[str] = []
    for log in DailyLog.objects.filter(owner=owner):
        parts += [log.heading, log.title, log.body]
    for paper in Paper.objects.filter(owner=owner):
        parts += [paper.title, f"[{paper.title}]({paper.url})", paper.url]
    for digest in Digest.objects.filter(owner=owner):
        parts.append(digest.body)
    for record in ImportRecord.objects.filter(owner=owner):
        parts.append(record.front_matter)
    return "\n".join(parts)


def _unmarked(line: str) -> str:
    # A paper's own line is stored as its title and URL: compare without the bullet or heading marker.
    return re.sub(r"^(#{1,6}\s+|[*+-]\s+)", "", line.strip())


@pytest.mark.parametrize("sample", ["journal_text", "paper_stack_text"])
def test_every_non_empty_line_lands_in_some_record(sample, request, user):
    text = request.getfixturevalue(sample)
    notes_import_markdown(owner=user, text=text, filename=f"{sample}.md")
    corpus = _corpus(user)
    _, lines, body_start = split_front_matter(text)
    fences = {0, body_start - 1}  # the front matter's own "---" delimiters are structure, not text
    missing = [line for i, line in enumerate(lines)
               if line.strip() and i not in fences
               and line.strip() not in corpus and _unmarked(line) not in corpus]
    assert missing == []


def test_import_reports_counts_and_the_malformed_date_warning(user, journal_text):
    report = notes_import_markdown(owner=user, text=journal_text, filename="journal.md")
    assert report.created["logs"] == DailyLog.objects.filter(owner=user, kind=LogKind.DAY).count() == 15
    assert report.merged["logs"] == 1  # 2020-04-28 appears twice
    assert report.created["notes"] == DailyLog.objects.filter(owner=user, kind=LogKind.NOTE).count()
    assert any("20202-10-28" in w for w in report.warnings)
    note = DailyLog.objects.get(owner=user, kind=LogKind.NOTE, title="20202-10-28")
    assert "flops reg" in note.body


def test_import_twice_creates_nothing_new(user, journal_text, paper_stack_text):
    notes_import_markdown(owner=user, text=journal_text)
    notes_import_markdown(owner=user, text=paper_stack_text)
    before = (DailyLog.objects.count(), Paper.objects.count(), Digest.objects.count(),
              list(DailyLog.objects.order_by("id").values_list("body", flat=True)))
    again = notes_import_markdown(owner=user, text=journal_text)
    again2 = notes_import_markdown(owner=user, text=paper_stack_text)
    after = (DailyLog.objects.count(), Paper.objects.count(), Digest.objects.count(),
             list(DailyLog.objects.order_by("id").values_list("body", flat=True)))
    assert after == before
    assert sum(again.created.values()) == sum(again2.created.values()) == 0
    assert again.unchanged > 0


def test_repeated_dates_are_merged_into_one_log(user, journal_text):
    notes_import_markdown(owner=user, text=journal_text)
    log = DailyLog.objects.get(owner=user, kind=LogKind.DAY, date=dt.date(2020, 4, 28))
    assert "* 组会" in log.body and "* 改图 (👌)" in log.body


def test_range_is_stored_as_end_date(user, journal_text):
    notes_import_markdown(owner=user, text=journal_text)
    log = DailyLog.objects.get(owner=user, date=dt.date(2021, 5, 8))
    assert log.end_date == dt.date(2021, 5, 11)


def test_paper_stack_creates_papers_digests_and_logs(user, paper_stack_text):
    report = notes_import_markdown(owner=user, text=paper_stack_text)
    assert report.created["papers"] == 6
    lsq = Paper.objects.get(owner=user, arxiv_id="1902.08153")
    assert lsq.status == "read"
    digest = Digest.objects.get(paper=lsq, owner=user)
    assert "<math" in digest.body_html  # $g = 1/\sqrt{N Q_P}$ rendered to MathML
    assert DailyLog.objects.get(owner=user, date=dt.date(2020, 3, 24)).title == "Gumbel Softmax"
    assert lsq.tags.count() == 0 and Paper.objects.get(arxiv_id="1912.00848").tags.get().name == "NAS"


def test_importing_is_per_user(user, other_user, journal_text):
    notes_import_markdown(owner=user, text=journal_text)
    report = notes_import_markdown(owner=other_user, text=journal_text)
    assert report.created["logs"] == 15


def test_export_round_trip_is_byte_for_byte(user, journal_text, paper_stack_text):
    notes_import_markdown(owner=user, text=journal_text)
    notes_import_markdown(owner=user, text=paper_stack_text)
    archive = zipfile.ZipFile(io.BytesIO(notes_export_zip(owner=user)))
    for log in DailyLog.objects.filter(owner=user, kind=LogKind.DAY):
        assert archive.read(f"logs/{log.date.isoformat()}.md") == log.body.encode()
    names = archive.namelist()
    for note in DailyLog.objects.filter(owner=user, kind=LogKind.NOTE):
        (name,) = [n for n in names if n.startswith(f"notes/{note.pk}-")]
        assert archive.read(name) == note.body.encode()
    for digest in Digest.objects.filter(owner=user):
        assert archive.read(f"digests/{digest.paper.slug}.md") == digest.body.encode()
    assert b"1902.08153" in archive.read("papers.bib")


def test_exported_journal_imports_back_into_the_same_logs(user, other_user, journal_text):
    notes_import_markdown(owner=user, text=journal_text)
    archive = zipfile.ZipFile(io.BytesIO(notes_export_zip(owner=user)))
    notes_import_markdown(owner=other_user, text=archive.read("journal.md").decode(), mode="journal")
    mine = dict(DailyLog.objects.filter(owner=user, kind=LogKind.DAY).values_list("date", "body"))
    theirs = dict(DailyLog.objects.filter(owner=other_user, kind=LogKind.DAY).values_list("date", "body"))
    assert theirs == mine


def test_management_commands_import_and_export(user, tmp_path, journal_text):
    src = tmp_path / "journal.md"
    src.write_text(journal_text, encoding="utf-8")
    out = io.StringIO()
    call_command("import_markdown", str(src), user=user.username, stdout=out)
    assert "created 15 logs" in out.getvalue() and "20202-10-28" in out.getvalue()
    out = io.StringIO()
    call_command("import_markdown", str(src), user=user.username, stdout=out)
    assert "created 0 logs" in out.getvalue()
    zpath = tmp_path / "out.zip"
    call_command("export_markdown", str(zpath), user=user.username, stdout=io.StringIO())
    assert "logs/2021-05-12.md" in zipfile.ZipFile(zpath).namelist()
