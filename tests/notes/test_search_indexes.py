"""The search indexes the migrations create exist on whichever database the suite runs on."""
from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def test_search_indexes_exist_for_this_database():
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'")
            assert cursor.fetchone() == ("pg_trgm",)
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'notes_%_trgm'")
            rows = dict(cursor.fetchall())
            assert {"notes_dailylog_body_trgm", "notes_digest_body_trgm", "notes_paper_title_trgm"} <= set(rows)
            assert all("gin_trgm_ops" in d for d in rows.values())
        else:
            cursor.execute("SELECT sql FROM sqlite_master WHERE name = 'notes_search_fts'")
            assert "trigram" in cursor.fetchone()[0]


def test_cjk_substring_query_uses_the_trigram_index_on_postgresql():
    from notes.models import DailyLog

    if connection.vendor != "postgresql":
        plan = DailyLog.objects.filter(body__icontains="结构化剪枝").explain()
        assert "notes_dailylog" in plan
        return
    with connection.cursor() as cursor:
        # Tiny test tables would otherwise always be scanned, and a plain index scan of another index (the date
        # index, read in full) can look as cheap; a bitmap scan needs an index condition, which only the trigram
        # index offers for this filter.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = DailyLog.objects.filter(body__icontains="结构化剪枝").order_by().explain()
    assert "notes_dailylog_body_trgm" in plan
