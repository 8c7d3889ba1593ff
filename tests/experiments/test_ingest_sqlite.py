"""Ingestion on SQLite, the zero-setup default of `./lab up`: the migrations that reshape the points table (no
foreign key, delete trigger, composite primary key) and the SQLite write path, run in a subprocess on a fresh SQLite
file whatever database the suite itself uses."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = r"""
import json
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from django.db import connection
from experiments import services
from experiments.ingest import Point
from experiments.models import MetricPoint

user = get_user_model().objects.create_user(username="u", password="a long enough password")
project = services.project_get_or_create(owner=user, name="p")
run = services.run_create(owner=user, project=project, name="r", config={}, tags=[])
batch = [Point(k, s, float(s % 7), 1e9 + s) for k in ("loss", "acc") for s in range(300)]
first = services.metrics_ingest(run=run, points=batch).stored
again = services.metrics_ingest(run=run, points=batch + [Point("loss", 300, 0.5, 1e9)]).stored
run.refresh_from_db()
out = {"vendor": connection.vendor, "first": first, "again": again, "count": MetricPoint.objects.filter(run=run).count(),
       "summary": run.metric_summary["loss"]}
with connection.cursor() as cur:  # delete the run row directly: the trigger must take its points along
    cur.execute("DELETE FROM experiments_run WHERE id = %s", [run.pk])
out["left"] = MetricPoint.objects.filter(run_id=run.pk).count()
print(json.dumps(out))
"""


def test_ingestion_on_sqlite_stores_once_and_points_go_with_their_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'lab.sqlite3'}", "LABBOOK_DATA_DIR": str(tmp_path),
                "DJANGO_SETTINGS_MODULE": "labbook.settings"})
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["vendor"] == "sqlite"
    assert (result["first"], result["again"], result["count"]) == (600, 1, 601)
    assert result["summary"]["count"] == 301 and result["summary"]["last_step"] == 300
    assert result["left"] == 0
