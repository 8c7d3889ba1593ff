"""Search indexes: pg_trgm + GIN trigram indexes (PostgreSQL), FTS5 trigram table (SQLite). See notes/search.py."""
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

PG_INDEXES = [
    ("notes_dailylog", "body"), ("notes_dailylog", "title"), ("notes_paper", "title"),
    ("notes_paper", "abstract"), ("notes_paper", "authors"), ("notes_digest", "body"),
]


def forwards(apps, schema_editor):
    conn = schema_editor.connection
    if conn.vendor == "postgresql":
        for table, column in PG_INDEXES:
            # UPPER(col) because Django's icontains is UPPER(col) LIKE UPPER(pattern) on PostgreSQL.
            schema_editor.execute(
                f'CREATE INDEX IF NOT EXISTS {table}_{column}_trgm ON {table} USING gin (UPPER("{column}") gin_trgm_ops)'
            )
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS notes_dailylog_fts ON notes_dailylog USING gin "
            "(to_tsvector('english'::regconfig, COALESCE(title, '') || ' ' || COALESCE(body, '')))"
        )
    elif conn.vendor == "sqlite":
        from notes.search import SqliteFtsIndex

        schema_editor.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {SqliteFtsIndex.TABLE} USING fts5("
            "kind UNINDEXED, obj_id UNINDEXED, owner_id UNINDEXED, shared UNINDEXED, title, body, tokenize='trigram')"
        )


def backwards(apps, schema_editor):
    conn = schema_editor.connection
    if conn.vendor == "postgresql":
        for table, column in PG_INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {table}_{column}_trgm")
        schema_editor.execute("DROP INDEX IF EXISTS notes_dailylog_fts")
    elif conn.vendor == "sqlite":
        schema_editor.execute("DROP TABLE IF EXISTS notes_search_fts")


class Migration(migrations.Migration):
    dependencies = [("notes", "0001_initial")]

    operations = [
        TrigramExtension(),
        migrations.RunPython(forwards, backwards),
    ]
