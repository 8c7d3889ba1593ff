"""Metric points lose their database foreign key (a per-row check that cost a quarter of a large batch's insert) and
gain a trigger that deletes a run's points (and rollups) when the run row is deleted, by any route. See
MetricPoint.run. On SQLite a later migration that rebuilds experiments_run would drop the trigger with the old table:
recreate it there (tests/experiments/test_ingest_append_path.py checks it exists on PostgreSQL)."""

import django.db.models.deletion
from django.db import migrations, models

PG_FORWARD = """
CREATE OR REPLACE FUNCTION labbook_delete_run_points() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM experiments_metricpoint WHERE run_id = OLD.id;
    -- Rollups keep their foreign key (a few rows per batch); rows a concurrent batch committed while this delete
    -- waited for the run's row lock are removed here too, so the deferred check at COMMIT finds none.
    DELETE FROM experiments_metricrollup WHERE run_id = OLD.id;
    RETURN OLD;
END $$;
CREATE TRIGGER labbook_run_points_cascade AFTER DELETE ON experiments_run
    FOR EACH ROW EXECUTE FUNCTION labbook_delete_run_points();
-- Points whose run is gone (none, unless something bypassed the foreign key before this migration).
DELETE FROM experiments_metricpoint p WHERE NOT EXISTS (SELECT 1 FROM experiments_run r WHERE r.id = p.run_id);
"""
PG_BACKWARD = """
DROP TRIGGER IF EXISTS labbook_run_points_cascade ON experiments_run;
DROP FUNCTION IF EXISTS labbook_delete_run_points();
"""
SQLITE_FORWARD = """
CREATE TRIGGER IF NOT EXISTS labbook_run_points_cascade AFTER DELETE ON experiments_run FOR EACH ROW
BEGIN
    DELETE FROM experiments_metricpoint WHERE run_id = OLD.id;
    DELETE FROM experiments_metricrollup WHERE run_id = OLD.id;
END;
"""
SQLITE_BACKWARD = "DROP TRIGGER IF EXISTS labbook_run_points_cascade;"


def _run(schema_editor, by_vendor: dict[str, str]) -> None:
    sql = by_vendor.get(schema_editor.connection.vendor)
    if sql:
        schema_editor.execute(sql)


def forward(apps, schema_editor):
    _run(schema_editor, {"postgresql": PG_FORWARD, "sqlite": SQLITE_FORWARD})


def backward(apps, schema_editor):
    _run(schema_editor, {"postgresql": PG_BACKWARD, "sqlite": SQLITE_BACKWARD})


class Migration(migrations.Migration):

    dependencies = [
        ("experiments", "0003_metric_rollups"),
    ]

    operations = [
        migrations.AlterField(
            model_name="metricpoint",
            name="run",
            field=models.ForeignKey(db_constraint=False, db_index=False,
                                    on_delete=django.db.models.deletion.CASCADE, related_name="metric_points",
                                    to="experiments.run"),
        ),
        migrations.RunPython(forward, backward),
    ]
