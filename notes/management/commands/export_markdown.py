"""./lab manage export_markdown --user alice notes.zip"""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from notes.importers.export import notes_export_zip

from ._common import get_owner


class Command(BaseCommand):
    help = "Export a user's logs, notes, digests and papers (BibTeX) to Markdown files in a zip."

    def add_arguments(self, parser):
        parser.add_argument("output")
        parser.add_argument("--user", required=True)

    def handle(self, *args, **opts):
        data = notes_export_zip(owner=get_owner(opts["user"]))
        Path(opts["output"]).write_bytes(data)
        self.stdout.write(f"wrote {opts['output']} ({len(data)} bytes)")
