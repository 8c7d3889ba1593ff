from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from notes import services
from notes.importers.bibtex import notes_import_bibtex, paper_to_bibtex, papers_to_bibtex, parse_bibtex
from notes.models import Paper

pytestmark = pytest.mark.django_db

BIB = r"""
@inproceedings{esser2020lsq,
  title = {Learned Step Size Quantization},
  author = {Esser, Steven K. and McKinstry, Jeffrey L.},
  booktitle = {International Conference on Learning Representations},
  year = {2020},
  eprint = {1902.08153},
  archivePrefix = {arXiv},
}

@article{wang2019haq,
  title={{HAQ}: Hardware-Aware Automated Quantization with Mixed Precision},
  author={Wang, Kuan and Liu, Zhijian},
  journal={CVPR},
  year={2019},
  doi={10.1109/CVPR.2019.00881},
  abstract={Model quantization 量化 is widely used.}
}
"""


def test_bibtex_import_creates_papers_with_fields(user):
    report = notes_import_bibtex(owner=user, text=BIB, filename="refs.bib")
    assert report.created["papers"] == 2
    lsq = Paper.objects.get(bibtex_key="esser2020lsq")
    assert (lsq.year, lsq.arxiv_id, lsq.venue) == (2020, "1902.08153", "International Conference on Learning Representations")
    haq = Paper.objects.get(bibtex_key="wang2019haq")
    assert haq.title == "HAQ: Hardware-Aware Automated Quantization with Mixed Precision"
    assert haq.doi == "10.1109/CVPR.2019.00881" and "量化" in haq.abstract
    assert haq.bibtex.startswith("@article{wang2019haq")


def test_bibtex_import_is_idempotent_and_fills_existing_papers(user):
    existing = services.paper_create(owner=user, title="Learned Step Size Quantization", arxiv_id="1902.08153")
    notes_import_bibtex(owner=user, text=BIB)
    again = notes_import_bibtex(owner=user, text=BIB)
    assert Paper.objects.filter(owner=user).count() == 2
    existing.refresh_from_db()
    assert existing.year == 2020 and existing.bibtex_key == "esser2020lsq"
    assert sum(again.created.values()) == 0


def test_bibtex_export_round_trips(user):
    notes_import_bibtex(owner=user, text=BIB)
    made = services.paper_create(owner=user, title="Once-for-All", arxiv_id="1908.09791", year=2020, venue="ICLR")
    text = papers_to_bibtex(Paper.objects.filter(owner=user))
    entries = {e["bibtex_key"]: e for e in parse_bibtex(text)}
    assert entries["esser2020lsq"]["arxiv_id"] == "1902.08153"
    assert entries["esser2020lsq"]["bibtex"] == Paper.objects.get(bibtex_key="esser2020lsq").bibtex
    (generated,) = parse_bibtex(paper_to_bibtex(made))
    assert (generated["title"], generated["arxiv_id"], generated["year"]) == ("Once-for-All", "1908.09791", 2020)


def test_invalid_bibtex_entry_without_title_is_reported(user):
    report = notes_import_bibtex(owner=user, text="@misc{nokey, author={A}}\n")
    assert report.warnings and Paper.objects.count() == 0


def test_import_bibtex_command(user, tmp_path):
    path = tmp_path / "refs.bib"
    path.write_text(BIB, encoding="utf-8")
    out = io.StringIO()
    call_command("import_bibtex", str(path), user=user.username, stdout=out)
    assert "created 0 logs, 0 notes, 2 papers" in out.getvalue()


def test_one_bad_entry_is_skipped_with_a_warning_and_the_rest_imported(user):
    text = BIB + "\n@misc{bad, title={Bad URL}, url={https://exa mple.org/x y}, year={1999}}\n"
    text = text.replace("https://exa mple.org/x y", "https://" + "x" * 1100)
    report = notes_import_bibtex(owner=user, text=text)
    assert report.created["papers"] == 2
    assert any("bad" in w for w in report.warnings)
