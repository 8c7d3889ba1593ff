"""Parsing a Markdown journal: one test per quirk of the sample (tests/notes/samples/journal.md)."""
from __future__ import annotations

import datetime as dt

import pytest

from notes.importers.parse import parse_date_heading, parse_markdown

D = dt.date


def _logs(text: str):
    return parse_markdown(text, "journal").of_kind("log")


def test_front_matter_is_kept_apart_and_read(journal_text):
    doc = parse_markdown(journal_text, "journal")
    assert doc.front_matter.startswith("layout:")
    assert doc.meta["title"] == "实验日志"
    assert all("layout:" not in s.body for s in doc.sections)


def test_text_before_first_date_is_a_separate_note(journal_text):
    doc = parse_markdown(journal_text, "journal")
    first = doc.sections[0]
    assert first.kind == "preamble"
    assert "# 实验日志" in first.body and "每天写下学到的东西" in first.body
    assert doc.sections.index(first) < doc.sections.index(doc.of_kind("log")[0])


@pytest.mark.parametrize("heading,start,end", [
    ("## 2021-5-12", D(2021, 5, 12), None),
    ("## 2021-05-12", D(2021, 5, 12), None),
    ("### 2021-1-1 ~ 2021-1-15", D(2021, 1, 1), D(2021, 1, 15)),
    ("### 2020-07-07~2020-07-12", D(2020, 7, 7), D(2020, 7, 12)),
    ("### 2020-06-22 - 2020-06-23", D(2020, 6, 22), D(2020, 6, 23)),
    ("### 2019-11-16/17", D(2019, 11, 16), D(2019, 11, 17)),
    ("### 2019-12-30~2020-01-02", D(2019, 12, 30), D(2020, 1, 2)),
    ("#\u30002019-11-15", D(2019, 11, 15), None),
    ("# 2019-11-14", D(2019, 11, 14), None),
])
def test_dated_headings_at_any_level_with_ranges(heading, start, end):
    (log,) = _logs(heading + "\n\n* x\n")
    assert (log.date, log.end_date) == (start, end)
    assert log.heading == heading


def test_no_zero_padding_needed():
    assert parse_date_heading("2020-1-3").start == D(2020, 1, 3)


def test_range_with_spaces_around_tilde(journal_text):
    log = next(s for s in _logs(journal_text) if s.date == D(2021, 5, 8))
    assert log.end_date == D(2021, 5, 11)


def test_full_width_space_after_hash(journal_text):
    log = next(s for s in _logs(journal_text) if s.date == D(2019, 11, 15))
    assert "开始记日志" in log.body


def test_malformed_date_is_kept_as_note_with_warning(journal_text):
    doc = parse_markdown(journal_text, "journal")
    note = next(s for s in doc.sections if s.title == "20202-10-28")
    assert note.kind == "note"
    assert "正在写 flops" in note.body and "flops reg" in note.body
    assert any("20202-10-28" in w for w in doc.warnings)


def test_repeated_dates_are_both_parsed(journal_text):
    twice = [s for s in _logs(journal_text) if s.date == D(2020, 4, 28)]
    assert [s.body.strip() for s in twice] == ["* 组会", "* 改图 (👌)"]


def test_stray_heading_stays_inside_its_entry(journal_text):
    log = next(s for s in _logs(journal_text) if s.date == D(2020, 7, 7))
    assert "# As experiments show, the gradient aligns with layer sensitivity." in log.body
    assert "sensitivity analysis per layer" in log.body


def test_hash_line_inside_code_fence_is_not_a_heading(journal_text):
    log = next(s for s in _logs(journal_text) if s.date == D(2019, 11, 15))
    assert "# 这一行在代码块里，不是标题" in log.body
    assert "python main.py --seed 1 --gpu 0" in log.body


def test_trailing_done_and_todo_sections_are_kept_as_notes(journal_text):
    doc = parse_markdown(journal_text, "journal")
    titles = {s.title: s for s in doc.of_kind("note")}
    assert "画 Acc-Sparsity 图（👌）" in titles["Done"].body
    assert "读 HAWQ" in titles["TODO (2020-03)"].body
    last_log = next(s for s in _logs(journal_text) if s.date == D(2019, 11, 14))
    assert "Done" not in last_log.body


def test_tabs_and_nested_bullets_are_kept_verbatim(journal_text):
    log = next(s for s in _logs(journal_text) if s.date == D(2020, 12, 18))
    assert "\t* arithmetic intensity $I = \\frac{FLOPs}{Bytes}$" in log.body
    assert "\t\t```" in log.body


def test_windows_image_path_is_kept_verbatim(journal_text):
    log = next(s for s in _logs(journal_text) if s.date == D(2021, 5, 12))
    assert r"![image-20210512101500000](C:\Users\someone\AppData\Roaming\Typora" in log.body


def test_inline_triple_backticks_do_not_open_a_fence(journal_text):
    dates = [s.date for s in _logs(journal_text)]
    assert D(2019, 11, 15) in dates and D(2019, 11, 14) in dates


def test_text_after_date_becomes_title():
    (log,) = _logs("### 2020-03-24 Gumbel Softmax\n\n* x\n")
    assert (log.date, log.title) == (D(2020, 3, 24), "Gumbel Softmax")


def test_heading_that_merely_contains_a_date_is_not_an_entry():
    doc = parse_markdown("## 2021-5-12\n\n* a\n\n### Notes on 2020-01-01\n\n* b\n", "journal")
    assert len(doc.of_kind("log")) == 1
    assert "### Notes on 2020-01-01" in doc.of_kind("log")[0].body


def test_range_ending_before_start_warns_and_keeps_the_entry():
    doc = parse_markdown("## 2021-5-12 ~ 2021-5-01\n\n* a\n", "journal")
    (log,) = doc.of_kind("log")
    assert log.date == D(2021, 5, 12) and log.end_date is None
    assert doc.warnings


def test_auto_detects_journal(journal_text):
    assert parse_markdown(journal_text, "auto").mode == "journal"


def test_todo_subsection_of_a_dated_entry_stays_in_it():
    doc = parse_markdown("## 2021-5-12\n\n* ran it\n\n### TODO\n\n* ablation\n\n## TODO\n\n* later\n", "journal")
    (log,) = doc.of_kind("log")
    assert "### TODO" in log.body and "* ablation" in log.body
    assert [n.title for n in doc.of_kind("note")] == ["TODO"] and "* later" in doc.of_kind("note")[0].body
