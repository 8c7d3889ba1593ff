"""``manage.py upload_offline_run FILE... --user NAME``: import offline run files (from ``labbook.init(offline=True)``)
on the server itself, without HTTP. Idempotent like the API: importing a file twice changes nothing."""
from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from experiments import services
from experiments.ingest import BatchError, Point, key_error
from experiments.models import Run
from labbook.client import LabbookError, read_offline

RUN_FIELDS = ("name", "kind", "config", "tags", "notes", "git_commit", "git_dirty", "command", "environment",
              "device", "seed")


class Command(BaseCommand):
    help = "Import Labbook offline run files (JSONL) for a user."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+")
        parser.add_argument("--user", required=True, help="username that will own the runs")

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user {options['user']!r}")
        for path in options["files"]:
            try:
                run, stored = self.import_file(user, path)
            except (LabbookError, OSError, BatchError, ValueError) as exc:
                raise CommandError(f"{path}: {exc}") from exc
            self.stdout.write(f"{path}: run {run.pk} ({stored} new points)")

    @transaction.atomic
    def import_file(self, user, path: str) -> tuple[Run, int]:
        payload, points, updates, finish = read_offline(path)
        project = services.project_get_or_create(owner=user, name=str(payload.get("project") or "default"))
        fields = {k: payload[k] for k in RUN_FIELDS if k in payload}
        parent = None
        if payload.get("parent"):
            parent = Run.objects.filter(owner=user, pk=payload["parent"]).first()
        run = services.run_create(owner=user, project=project, parent=parent,
                                  client_id=str(payload.get("client_id") or ""), **fields)
        clean = []
        for i, (key, step, value, wall) in enumerate(points):
            if (err := key_error(key)) is not None:
                raise BatchError(f"points[{i}].key", err)
            clean.append(Point(key, int(step), float(value), float(wall)))
        stored = 0
        for start in range(0, len(clean), 10_000):
            stored += services.metrics_ingest(run=run, points=clean[start:start + 10_000]).stored
        for update in updates:
            if "_artifact" in update:
                art = update["_artifact"]
                with open(art["local_path"], "rb") as fh:
                    services.artifact_store(run=run, path=art["path"], chunks=iter(lambda: fh.read(1 << 20), b""),
                                            kind=art.get("kind", ""))
                continue
            services.run_update(run=run, **{k: v for k, v in update.items() if k in ("tags", "notes", "name")})
        if finish is not None:
            ended = dt.datetime.fromtimestamp(finish["ended_at"], tz=dt.UTC)
            services.run_update(run=run, status=finish.get("status", "succeeded"), ended_at=ended)
        return run, stored
