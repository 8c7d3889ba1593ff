"""./lab manage import_bibtex --user alice refs.bib"""
from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from notes.importers.bibtex import notes_import_bibtex

from ._common import get_owner


class Command(BaseCommand):
    help = "Import papers from BibTeX (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+")
        parser.add_argument("--user", required=True)

    def handle(self, *args, **opts):
        owner = get_owner(opts["user"])
        for name in opts["files"]:
            path = Path(name)
            if not path.is_file():
                raise CommandError(f"{name}: no such file")
            try:
                report = notes_import_bibtex(owner=owner, text=path.read_text(encoding="utf-8"), filename=path.name)
            except (ValidationError, UnicodeDecodeError) as exc:
                raise CommandError(f"{name}: {exc}") from exc
            self.stdout.write(f"{name}: {report.summary()}")
            for warning in report.warnings:
                self.stdout.write(self.style.WARNING(f"  warning: {warning}"))
