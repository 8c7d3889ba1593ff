"""The SQLite FTS5 trigram index, driven directly on its own sqlite3 connection: this runs whatever the main test
database is, so CI proves the SQLite search path even when the suite runs on PostgreSQL."""
from __future__ import annotations

import sqlite3

import pytest

from notes.search import SqliteFtsIndex


@pytest.fixture
def index():
    conn = sqlite3.connect(":memory:")
    idx = SqliteFtsIndex(conn)
    idx.ensure_schema()
    idx.upsert(kind="log", obj_id=1, owner_id=1, shared=False, title="2021-05-12", body="今天做了结构化剪枝实验")
    idx.upsert(kind="log", obj_id=2, owner_id=1, shared=False, title="2021-05-13", body="W4A4 量化感知训练")
    idx.upsert(kind="log", obj_id=3, owner_id=1, shared=False, title="2021-05-14", body="点云分割数据问题")
    idx.upsert(kind="paper", obj_id=4, owner_id=1, shared=False, title="Quantization Quantization", body="quantization")
    idx.upsert(kind="log", obj_id=5, owner_id=1, shared=False, title="x", body="one word on quantization here")
    idx.upsert(kind="log", obj_id=6, owner_id=2, shared=False, title="y", body="别人的剪枝笔记")
    idx.upsert(kind="log", obj_id=7, owner_id=2, shared=True, title="z", body="共享的点云笔记")
    yield idx
    conn.close()


def test_trigram_tokenizer_is_available():
    conn = sqlite3.connect(":memory:")
    SqliteFtsIndex(conn).ensure_schema()
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (SqliteFtsIndex.TABLE,)).fetchone()[0]
    assert "trigram" in sql


@pytest.mark.parametrize("query,ids", [("剪枝", [1]), ("量化", [2]), ("点云", [3, 7]), ("结构化剪枝", [1]),
                                       ("点云分割", [3])])
def test_cjk_queries(index, query, ids):
    assert sorted(h.obj_id for h in index.search(query, viewer_id=1)) == ids


def test_bm25_ranks_the_denser_match_first(index):
    hits = index.search("quantization", viewer_id=1)
    assert [h.obj_id for h in hits] == [4, 5]
    assert hits[0].score > hits[1].score


def test_upsert_replaces_and_delete_removes(index):
    index.upsert(kind="log", obj_id=1, owner_id=1, shared=False, title="t", body="蒸馏")
    assert index.search("剪枝", viewer_id=1) == []
    assert [h.obj_id for h in index.search("蒸馏", viewer_id=1)] == [1]
    index.delete(kind="log", obj_id=1)
    assert index.search("蒸馏", viewer_id=1) == []


def test_other_owners_private_rows_are_invisible(index):
    assert [h.obj_id for h in index.search("笔记", viewer_id=1)] == [7]


def test_like_special_characters_are_literal(index):
    index.upsert(kind="log", obj_id=9, owner_id=1, shared=False, title="t", body="acc 50% done")
    assert [h.obj_id for h in index.search("0%", viewer_id=1)] == [9]
    assert index.search("_", viewer_id=1) == []


def test_quotes_in_queries_do_not_break_fts_syntax(index):
    assert index.search('"quantization" AND OR NEAR(', viewer_id=1) is not None
