"""Submit a job from a YAML or JSON spec file and follow it with a progress bar (``--detach`` returns at once).

    ./lab manage submit_job spec.yaml [--user NAME] [--detach] [--set hyperparameters.epochs=3]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yaml
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from runner import services
from runner.models import FINAL_STATUSES, Job, JobStatus

POLL_S = 0.5


def _set_path(spec: dict, dotted: str, raw: str) -> None:
    """--set a.b=value: value parsed as YAML (numbers, booleans, lists), nested dicts created as needed."""
    node = spec
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise CommandError(f"--set {dotted}: {key} is not a mapping")
    node[leaf] = yaml.safe_load(raw)


class Command(BaseCommand):
    help = "Submit a job from a YAML/JSON spec file and follow its progress."

    def add_arguments(self, parser):
        parser.add_argument("spec", help="path to a .yaml/.yml/.json spec, or - for stdin")
        parser.add_argument("--user", help="owner (default: the only user, or the only superuser)")
        parser.add_argument("--detach", action="store_true", help="print the job id and return at once")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a spec field, e.g. --set hyperparameters.epochs=3")

    def handle(self, *args, spec: str, user: str | None, detach: bool, set: list[str], **options):
        owner = self._owner(user)
        data = self._load(spec)
        for item in set:
            key, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--set expects KEY=VALUE, got {item!r}")
            _set_path(data, key.strip(), value)
        try:
            job = services.job_submit(owner=owner, spec=data)
        except ValidationError as exc:
            lines = [f"  {field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()]
            raise CommandError("invalid spec:\n" + "\n".join(lines)) from exc
        except services.JobLimitExceeded as exc:
            raise CommandError(str(exc)) from exc
        job.refresh_from_db()
        self.stdout.write(f"job {job.pk} (run {job.run_id}) queued on {job.queue}"
                          + ("" if job.dispatched else " — broker unreachable, it will be dispatched when it is back"))
        if detach:
            return
        status = self._follow(job)
        if status != JobStatus.SUCCEEDED:
            raise CommandError(f"job {job.pk} {status}")

    def _owner(self, username: str | None):
        users = get_user_model().objects.filter(is_active=True)
        if username:
            owner = users.filter(username=username).first()
            if owner is None:
                raise CommandError(f"no active user named {username!r}")
            return owner
        for candidates in (users, users.filter(is_superuser=True)):
            if candidates.count() == 1:
                return candidates.get()
        raise CommandError("several users exist: choose one with --user NAME")

    def _load(self, path: str) -> dict:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        try:
            data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise CommandError(f"{path} is not valid {'JSON' if path.endswith('.json') else 'YAML'}: {exc}") from exc
        if not isinstance(data, dict):
            raise CommandError(f"{path} must contain a mapping (kind: train, model: ..., ...)")
        return data

    def _follow(self, job: Job) -> str:
        from tqdm import tqdm

        after = -1
        bar = tqdm(total=None, unit="step", desc=f"job {job.pk} queued", dynamic_ncols=True, file=self.stdout._out)
        try:
            while True:
                job.refresh_from_db()
                for line in job.log_lines.filter(seq__gt=after).order_by("seq")[:500]:
                    bar.write(line.text, file=self.stdout._out)
                    after = line.seq
                if job.progress_total and bar.total != job.progress_total:
                    bar.total = job.progress_total
                bar.n = job.progress_step
                bar.set_description(f"job {job.pk} {job.status}"
                                    + (f" epoch {job.epoch}" if job.epoch is not None else ""))
                bar.refresh()
                if job.status in FINAL_STATUSES and not job.log_lines.filter(seq__gt=after).exists():
                    break
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            bar.close()
            self.stdout.write(f"\nstopped following; job {job.pk} goes on (cancel: POST /api/jobs/{job.pk}/cancel/)")
            return job.status
        bar.close()
        self.stdout.write(f"job {job.pk} {job.status}" + (f": {job.error}" if job.error else ""))
        if job.summary:
            self.stdout.write(json.dumps(job.summary, indent=2, default=str))
        return job.status
