"""One maintenance pass (workers run it every few seconds on their own): mark jobs whose heartbeat stopped as lost,
and dispatch queued jobs that were submitted while the broker was down. ``--loop`` keeps doing it (e.g. in cron-less
deployments without workers on the web host)."""
from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from runner.conf import job_setting
from runner.services import jobs_maintain


class Command(BaseCommand):
    help = "Mark jobs with stale heartbeats lost and dispatch undispatched queued jobs."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="repeat every LABBOOK_JOBS_MAINTENANCE_INTERVAL_S")

    def handle(self, *args, loop: bool, **options):
        while True:
            done = jobs_maintain()
            self.stdout.write(f"lost: {done['lost']}  dispatched: {done['dispatched']}")
            if not loop:
                return
            time.sleep(job_setting("MAINTENANCE_INTERVAL_S"))
