"""PostgreSQL: metric keys compare byte-wise (COLLATE "C") in the points and rollups tables. Keys are ASCII
(ingest.KEY_RE), so the order is the same as under any UTF-8 locale, but each B-tree comparison is a memcmp instead of
a locale-aware strcoll: ~10 % off a 10,000-point COPY with this machine's C.UTF-8 database, more under a locale like
en_US.UTF-8. Outside Django's model state (SQLite has no "C" collation): a later AlterField of these columns must
keep the COLLATE, see MetricPoint.key."""

from django.db import migrations

TABLES = ("experiments_metricpoint", "experiments_metricrollup")


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f'ALTER TABLE {table} ALTER COLUMN key TYPE varchar(200) COLLATE "C"')


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f'ALTER TABLE {table} ALTER COLUMN key TYPE varchar(200) COLLATE "default"')


class Migration(migrations.Migration):

    dependencies = [
        ("experiments", "0005_metricpoint_composite_pk"),
    ]

    operations = [migrations.RunPython(forward, backward)]
