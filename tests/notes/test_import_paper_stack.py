"""Parsing a paper stack (tests/notes/samples/paper_stack.md)."""
from __future__ import annotations

import datetime as dt

from notes.importers.parse import parse_markdown


def _papers(text):
    return {s.title: s for s in parse_markdown(text, "paper_stack").of_kind("paper")}


def test_auto_detects_paper_stack(paper_stack_text):
    assert parse_markdown(paper_stack_text, "auto").mode == "paper_stack"


def test_link_bullets_and_link_headings_become_papers(paper_stack_text):
    papers = _papers(paper_stack_text)
    assert set(papers) == {
        "Once-for-All: Train One Network and Specialize it for Efficient Deployment",
        "Neural Predictor for Neural Architecture Search",
        "Learned Step Size Quantization",
        "HAQ: Hardware-Aware Automated Quantization with Mixed Precision",
        "Searching for Accurate Binary Neural Architectures",
        "BATS: Binary ArchitecTure Search",
    }


def test_non_paper_links_are_not_papers(paper_stack_text):
    assert "Reading sheet" not in _papers(paper_stack_text)


def test_arxiv_abs_and_pdf_links_give_the_arxiv_id(paper_stack_text):
    papers = _papers(paper_stack_text)
    assert papers["Once-for-All: Train One Network and Specialize it for Efficient Deployment"].arxiv_id == "1908.09791"
    assert papers["Neural Predictor for Neural Architecture Search"].arxiv_id == "1912.00848"
    assert papers["Learned Step Size Quantization"].arxiv_id == "1902.08153"


def test_nested_bullets_are_the_digest(paper_stack_text):
    ofa = _papers(paper_stack_text)["Once-for-All: Train One Network and Specialize it for Efficient Deployment"]
    assert ofa.body.startswith("* 训练一个 supernet")
    assert "  * kernel size → depth → width" in ofa.body


def test_template_sections_after_a_paper_are_its_digest(paper_stack_text):
    lsq = _papers(paper_stack_text)["Learned Step Size Quantization"]
    assert "* 🔑 Key:" in lsq.body and "* 💡 Ideas:" in lsq.body
    assert "gradient scale $g = 1/\\sqrt{N Q_P}$" in lsq.body
    haq = _papers(paper_stack_text)["HAQ: Hardware-Aware Automated Quantization with Mixed Precision"]
    assert "DDPG, latency/energy budget" in haq.body
    assert "把 quantizer" not in haq.body


def test_heading_paper_takes_its_section_as_digest(paper_stack_text):
    bats = _papers(paper_stack_text)["BATS: Binary ArchitecTure Search"]
    assert bats.body.strip() == "* 通过 temperature 控制搜索的稳定性"


def test_dated_sections_become_logs(paper_stack_text):
    logs = parse_markdown(paper_stack_text, "paper_stack").of_kind("log")
    assert [(s.date, s.title) for s in logs] == [(dt.date(2020, 3, 24), "Gumbel Softmax"), (dt.date(2020, 4, 5), "")]


def test_template_code_block_is_not_mistaken_for_a_digest(paper_stack_text):
    doc = parse_markdown(paper_stack_text, "paper_stack")
    notes = [s for s in doc.sections if s.kind == "note" and "```" in s.body]
    assert notes and "* 🔑 Key:" in notes[0].body


def test_category_heading_tags_the_papers(paper_stack_text):
    papers = _papers(paper_stack_text)
    assert papers["Neural Predictor for Neural Architecture Search"].tags == ["NAS"]
