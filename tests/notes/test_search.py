"""Search through the configured database (PostgreSQL under ./lab test; run with DATABASE_URL=sqlite:///… for the
SQLite FTS5 side). CJK queries of two and three characters, English ranking, snippets, visibility."""
from __future__ import annotations

import datetime as dt

import pytest

from notes import selectors, services

pytestmark = pytest.mark.django_db

D = dt.date


@pytest.fixture
def corpus(user, other_user):
    services.log_save(owner=user, date=D(2021, 5, 12), body="今天做了结构化剪枝实验，resnet20 上 channel pruning 掉点 0.3%。")
    services.log_save(owner=user, date=D(2021, 5, 13), body="W4A4 量化感知训练 (QAT)，per-channel 比 per-tensor 好。")
    services.log_save(owner=user, date=D(2021, 5, 14), body="点云分割数据问题：label 映射和 ply 文件不一致。")
    services.log_save(owner=user, date=D(2021, 5, 15), body="Quantization of transformers: quantization noise grows.")
    services.log_save(owner=user, date=D(2021, 5, 16), body="A quick note about quantization.")
    paper = services.paper_create(owner=user, title="Learned Step Size Quantization", abstract="低比特量化")
    services.digest_save(paper=paper, owner=user, body="* 🔑 Key: 可学习的 step size，剪枝之外的另一条路")
    services.log_save(owner=other_user, date=D(2021, 5, 12), body="mallory 的私有剪枝笔记")
    return paper


@pytest.mark.parametrize("query,expected_date", [
    ("剪枝", D(2021, 5, 12)),          # two characters: shorter than a trigram
    ("量化", D(2021, 5, 13)),
    ("点云", D(2021, 5, 14)),
    ("结构化剪枝", D(2021, 5, 12)),     # longer CJK phrase: the trigram index
    ("点云分割", D(2021, 5, 14)),
])
def test_chinese_queries_find_chinese_text(user, corpus, query, expected_date):
    results = selectors.search(user, query)
    assert expected_date in [r.date for r in results if r.kind == "log"]
    assert all(query in (r.snippet.replace("<mark>", "").replace("</mark>", "")) or r.kind != "log"
               for r in results if r.date == expected_date)


def test_snippets_highlight_the_match(user, corpus):
    (hit,) = [r for r in selectors.search(user, "点云") if r.kind == "log"]
    assert "<mark>点云</mark>" in hit.snippet


def test_snippets_escape_html(user):
    services.log_save(owner=user, date=D(2021, 1, 1), body="<b>bold</b> pruning <script>x</script>")
    (hit,) = selectors.search(user, "pruning")
    assert "<script>" not in hit.snippet and "&lt;script&gt;" in hit.snippet


def test_search_covers_papers_and_digests(user, corpus):
    kinds = {r.kind for r in selectors.search(user, "量化")}
    assert {"log", "paper"} <= kinds
    assert "digest" in {r.kind for r in selectors.search(user, "step size")}


def test_english_ranking_puts_the_denser_match_first(user, corpus):
    logs = [r for r in selectors.search(user, "quantization") if r.kind == "log"]
    assert [r.date for r in logs][:2] == [D(2021, 5, 15), D(2021, 5, 16)]


def test_all_terms_must_match(user, corpus):
    dates = [r.date for r in selectors.search(user, "per-channel 量化")]
    assert dates == [D(2021, 5, 13)]


def test_others_private_notes_are_not_found(user, other_user, corpus):
    assert "mallory" not in " ".join(r.snippet for r in selectors.search(user, "剪枝"))
    assert [r.date for r in selectors.search(other_user, "剪枝")] == [D(2021, 5, 12)]


def test_shared_notes_are_found_by_others(user, other_user, corpus):
    services.log_save(owner=user, date=D(2021, 5, 14), body="点云分割数据问题", shared=True)
    assert D(2021, 5, 14) in [r.date for r in selectors.search(other_user, "点云")]


def test_edits_are_searchable_at_once(user):
    services.log_save(owner=user, date=D(2021, 5, 12), body="old words")
    services.log_save(owner=user, date=D(2021, 5, 12), body="新的蒸馏实验")
    assert selectors.search(user, "old words") == []
    assert [r.date for r in selectors.search(user, "蒸馏")] == [D(2021, 5, 12)]


def test_deleted_notes_disappear_from_results(user):
    log = services.log_save(owner=user, date=D(2021, 5, 12), body="稀疏训练")
    services.log_delete(log=log)
    assert selectors.search(user, "稀疏") == []


def test_empty_query_finds_nothing(user, corpus):
    assert selectors.search(user, "   ") == []
