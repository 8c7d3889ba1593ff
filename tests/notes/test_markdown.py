"""Rendering and sanitising (notes.markdown): pure functions, no database."""
from __future__ import annotations

import pytest

from notes.markdown import extract_wikilinks, render_markdown, resolve_wikilinks


def test_inline_and_display_math_become_mathml():
    html = render_markdown("Energy $E = mc^2$ and\n\n$$\\frac{a}{b}$$\n")
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">' in html
    assert 'display="block"' in html and "<mfrac>" in html
    assert "$" not in html


def test_math_is_protected_from_markdown_emphasis():
    html = render_markdown("$a_1 * b_2 * c_3$")
    assert "<em>" not in html and "<msub>" in html


def test_dollars_in_code_are_not_math():
    html = render_markdown("`$x$` and\n\n```\nprice = $5 + $6\n```\n")
    assert "<math" not in html and "$x$" in html and "$5 + $6" in html


def test_prices_are_not_math():
    assert "<math" not in render_markdown("It costs $5 and $6 today.")


def test_bad_latex_shows_source_instead_of_failing():
    html = render_markdown("$\\frac{a}{$")
    assert "<script" not in html


def test_fenced_code_is_highlighted_with_css_classes():
    html = render_markdown("```python\ndef f():\n    return 1\n```\n")
    assert '<div class="highlight">' in html and '<span class="k">def</span>' in html
    assert "style=" not in html


def test_tables_tasklists_strikethrough_footnotes():
    html = render_markdown("| a | b |\n|---|---|\n| 1 | 2 |\n\n- [x] done\n- [ ] todo\n\n~~old~~ new[^1]\n\n[^1]: why\n")
    assert "<table>" in html and "<td>1</td>" in html
    assert 'type="checkbox"' in html and "checked" in html
    assert "<del>old</del>" in html
    assert 'class="footnote"' in html


def test_emoji_and_cjk_untouched():
    html = render_markdown("量化实验 W4A4 (👌) :warning: 剪枝")
    assert "量化实验 W4A4 (👌) :warning: 剪枝" in html


def test_images_by_url_and_two_space_nested_lists():
    html = render_markdown("* a\n  * b\n    * ![](https://example.org/x.png)\n")
    assert html.count("<ul>") == 3
    assert '<img alt="" src="https://example.org/x.png">' in html


@pytest.mark.parametrize("evil", [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "![x](data:image/svg+xml;base64,PHN2Zz4=)",
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    '<div onclick="alert(1)">x</div>',
    '<iframe src="https://evil.example"></iframe>',
    '<svg><script>alert(1)</script></svg>',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<input type="text" onfocus="alert(1)" autofocus>',
    '<style>body{display:none}</style>',
])
def test_sanitiser_removes_scripts_handlers_and_dangerous_urls(evil):
    html = render_markdown(evil).lower()
    assert "<script" not in html and "javascript:" not in html and "data:" not in html
    assert "onerror" not in html and "onclick" not in html and "onfocus" not in html
    assert "<iframe" not in html and "<style" not in html and 'type="text"' not in html


def test_links_get_noopener():
    assert 'rel="noopener noreferrer"' in render_markdown("[x](https://example.org)")


def test_wikilinks_are_extracted_and_rendered_as_placeholders():
    text = "see [[run:42]], [[paper:lsq-2020]] and [[log:2021-5-12]] but not `[[run:7]]`"
    html = render_markdown(text)
    assert 'data-ref="run:42"' in html and 'data-ref="paper:lsq-2020"' in html
    assert 'data-ref="run:7"' not in html  # inside code: literal text
    assert extract_wikilinks(text)[:3] == [("run", "42"), ("paper", "lsq-2020"), ("log", "2021-5-12")]


def test_resolve_wikilinks_links_visible_and_hides_invisible_targets():
    html = render_markdown("[[run:1]] [[run:2]]")
    out = resolve_wikilinks(html, lambda kind, key: ("/runs/1/", "run #1 <b>") if key == "1" else None)
    assert '<a class="wikilink" href="/runs/1/">run #1 &lt;b&gt;</a>' in out
    assert '<span class="wikilink missing">[[run:2]]</span>' in out


def test_notes_cannot_borrow_page_classes_but_keep_highlighting():
    html = render_markdown('<div class="notes-editor danger">x</div>\n\n```python\nx = 1\n```\n')
    assert "notes-editor" not in html and "danger" not in html
    assert 'class="highlight"' in html and 'class="n"' in html


def test_only_footnote_ids_survive():
    html = render_markdown('<div id="content">x</div>\n\nnote[^a]\n\n[^a]: b\n')
    assert 'id="content"' not in html and 'id="fn:a"' in html
