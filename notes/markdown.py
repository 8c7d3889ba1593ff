"""Markdown → sanitised HTML, with server-side math (MathML) and ``[[kind:key]]`` wiki links.

Pipeline (``render_markdown``): protect math from Markdown (placeholders, code-aware) → python-markdown with
pymdown-extensions → math placeholders to MathML (latex2mathml, nothing fetched) → nh3 allow-list sanitising.
Wiki links come out as ``<a class="wikilink" data-ref="run:42">`` placeholders; ``resolve_wikilinks`` turns them into
real links per viewer at display time, so a shared note never leaks the title of an object its reader can't see.
"""
from __future__ import annotations

import html
import re
import xml.etree.ElementTree as etree
from collections.abc import Callable

import markdown
import nh3
from latex2mathml.converter import convert as latex_to_mathml
from markdown.inlinepatterns import InlineProcessor

WIKILINK_RE = r"\[\[(run|paper|log):([^\]\s|]{1,200})\]\]"
WIKILINK_PATTERN = re.compile(WIKILINK_RE)

_FENCE_RE = re.compile(r"^[ \t>]*(`{3,}|~{3,})")
# Inline code spans are skipped; $$…$$ may span lines; $…$ needs non-space next to both dollars (so "$5 and $6" is text)
_MATH_RE = re.compile(
    r"(?P<code>(?P<ticks>`+)(?:.+?)(?<!`)(?P=ticks)(?!`))"
    r"|(?P<display>(?<!\\)\$\$(?P<dbody>.+?)(?<!\\)\$\$)"
    r"|(?P<inline>(?<![\\$])\$(?=[^\s$])(?P<ibody>[^$\n]*?[^\s\\$])\$(?![\d$]))",
    re.S,
)
_PLACEHOLDER = "LBMATH{}Z"
_PLACEHOLDER_RE = re.compile(r"LBMATH(\d+)Z")
_LIST_ITEM_RE = re.compile(r"^(\s*)([*+-]|\d{1,9}[.)])(\s+|$)")

MATHML_TAGS = {
    "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub", "msubsup", "mfrac", "msqrt", "mroot",
    "mstyle", "mtable", "mtr", "mtd", "munder", "mover", "munderover", "mpadded", "mphantom", "menclose", "merror",
    "semantics", "annotation", "mmultiscripts", "mprescripts", "none",
}
MATHML_ATTRS = {
    "display", "xmlns", "mathvariant", "stretchy", "fence", "separator", "lspace", "rspace", "columnalign",
    "displaystyle", "scriptlevel", "accent", "accentunder", "form", "minsize", "maxsize", "linethickness", "width",
    "height", "depth", "rowspacing", "columnspacing", "movablelimits", "symmetric", "largeop", "notation",
    "columnlines", "rowlines", "frame", "encoding",
}
HTML_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "input", "ins", "kbd", "li", "mark", "ol", "p", "pre", "s", "span", "strong",
    "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul", "label", "section",
}
ALLOWED_TAGS = HTML_TAGS | MATHML_TAGS
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"class", "id", "title", "lang", "dir"},
    "a": {"href", "data-ref"},
    "img": {"src", "alt", "width", "height"},
    "td": {"align", "colspan", "rowspan", "style"},
    "th": {"align", "colspan", "rowspan", "style"},
    "input": {"type", "checked", "disabled"},
    "ol": {"start"},
    "li": {"value"},
    "code": {"data-lang"},
    **{tag: set(MATHML_ATTRS) for tag in MATHML_TAGS},
}
URL_SCHEMES = {"http", "https", "mailto"}


# Classes the renderer itself produces (Pygments tokens are 1-3 letters). Anything else is dropped, so a note can't
# borrow the page's own classes (e.g. "notes-editor") and confuse the page's scripts or styles.
_SAFE_CLASS_RE = re.compile(
    r"^(?:[a-z]{1,3}[0-9]?|highlight|task-list|task-list-item|task-list-control|task-list-indicator|footnote|"
    r"footnote-ref|footnote-backref|wikilink|math-error|linenos|language-[A-Za-z0-9_+-]{1,30}|magiclink[\w-]*)$"
)


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    # Task-list checkboxes are the only inputs allowed, and only disabled ones; table cells only align text.
    if tag == "input" and attr == "type" and value != "checkbox":
        return None
    if attr == "id" and not re.fullmatch(r"(?:fn|fnref)(?::|-)[\w-]{1,60}", value):
        return None  # footnote anchors only: user ids could clobber the page's own ids
    if attr == "class":
        kept = [c for c in value.split() if _SAFE_CLASS_RE.match(c)]
        return " ".join(kept) or None
    if attr == "style" and not re.fullmatch(r"text-align:\s*(left|right|center);?", value.strip()):
        return None
    return value


def sanitize_html(raw_html: str) -> str:
    """Allow-list sanitiser: no script, no event handler, no javascript:/data: URL survives; links get rel=noopener."""
    return nh3.clean(
        raw_html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
        attribute_filter=_attribute_filter,
    )


def _normalise_list_indent(text: str) -> str:
    """Re-indent nested list items to python-markdown's 4 spaces (people write 2 or 3, CommonMark accepts them).

    Only the rendering sees this; the stored body stays as typed. Continuation lines move with their item.
    """
    out: list[str] = []
    stack: list[tuple[int, int]] = []  # (indent as typed, indent we emit)
    in_fence = False
    for line in text.split("\n"):
        expanded = line.expandtabs(4)
        if _FENCE_RE.match(expanded) and not _LIST_ITEM_RE.match(expanded):
            in_fence = not in_fence if not in_fence or expanded.strip().startswith(("```", "~~~")) else in_fence
        m = _LIST_ITEM_RE.match(expanded)
        if m and not in_fence:
            indent = len(m.group(1))
            while stack and stack[-1][0] > indent:
                stack.pop()
            if stack and stack[-1][0] == indent:
                new = stack[-1][1]
            elif stack:
                new = stack[-1][1] + 4
                stack.append((indent, new))
            else:
                new = 0 if indent < 4 else indent
                stack.append((indent, new))
            out.append(" " * new + expanded[indent:])
            continue
        if not expanded.strip():
            out.append(line)
            continue
        indent = len(expanded) - len(expanded.lstrip(" "))
        if stack and indent > 0:
            # Continuation (or fenced code) under the deepest item whose typed indent is below this line's.
            base = next(((o, n) for o, n in reversed(stack) if o < indent), None)
            if base is not None:
                shift = base[1] + 4 - (base[0] + (indent - base[0] if indent - base[0] < 4 else 4))
                shift = max(shift, base[1] - base[0])
                out.append(" " * max(indent + shift, 0) + expanded.lstrip(" "))
                continue
        elif indent == 0 and not in_fence:
            stack.clear()
        out.append(expanded if stack else line)
    return "\n".join(out)


def _protect_math(text: str) -> tuple[str, list[tuple[str, bool]]]:
    """Swap math for placeholders outside fenced and inline code, so Markdown can't mangle ``_`` or ``\\``."""
    maths: list[tuple[str, bool]] = []
    out: list[str] = []
    chunk: list[str] = []
    fence: str | None = None

    def flush() -> None:
        if not chunk:
            return

        def repl(m: re.Match[str]) -> str:
            if m.group("code"):
                return m.group(0)
            if m.group("display") is not None:
                maths.append((m.group("dbody").strip(), True))
            else:
                maths.append((m.group("ibody"), False))
            return _PLACEHOLDER.format(len(maths) - 1)

        out.append(_MATH_RE.sub(repl, "".join(chunk)))
        chunk.clear()

    for line in text.splitlines(keepends=True):
        m = _FENCE_RE.match(line)
        if fence is None and m:
            flush()
            fence = m.group(1)
            out.append(line)
        elif fence is not None:
            out.append(line)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):]:
                fence = None
        else:
            chunk.append(line)
    flush()
    return "".join(out), maths


def _math_html(latex: str, display: bool) -> str:
    try:
        return latex_to_mathml(latex, display="block" if display else "inline")
    except Exception:  # latex2mathml raises many types on bad input; show the source rather than fail the save
        return f'<code class="math-error">{html.escape(latex)}</code>'


class _WikiLinkProcessor(InlineProcessor):
    def handleMatch(self, m: re.Match[str], data: str):  # noqa: N802 (python-markdown API)
        el = etree.Element("a")
        el.set("class", "wikilink")
        el.set("data-ref", f"{m.group(1)}:{m.group(2)}")
        el.text = m.group(0)
        return el, m.start(0), m.end(0)


class WikiLinkExtension(markdown.Extension):
    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802
        md.inlinePatterns.register(_WikiLinkProcessor(WIKILINK_RE, md), "labbook_wikilink", 175)


def _markdown() -> markdown.Markdown:
    return markdown.Markdown(
        extensions=[
            "tables", "footnotes", "sane_lists", "attr_list", "def_list", "abbr",
            "pymdownx.superfences", "pymdownx.highlight", "pymdownx.inlinehilite", "pymdownx.tasklist",
            "pymdownx.tilde", "pymdownx.caret", "pymdownx.mark", "pymdownx.magiclink",
            WikiLinkExtension(),
        ],
        extension_configs={
            "pymdownx.highlight": {"use_pygments": True, "css_class": "highlight", "guess_lang": False},
            "pymdownx.tasklist": {"custom_checkbox": False},
            "pymdownx.magiclink": {"hide_protocol": False},
        },
        output_format="html",
    )


def render_markdown(text: str) -> str:
    """Markdown source → sanitised HTML. Pure function (no database), safe to call on untrusted input."""
    protected, maths = _protect_math(_normalise_list_indent(text))
    rendered = _markdown().convert(protected)

    def put_math(m: re.Match[str]) -> str:
        index = int(m.group(1))
        if index >= len(maths):
            return m.group(0)
        return _math_html(*maths[index])

    rendered = _PLACEHOLDER_RE.sub(put_math, rendered)
    return sanitize_html(rendered)


def extract_wikilinks(text: str) -> list[tuple[str, str]]:
    """``[[kind:key]]`` references in source order, duplicates removed (code is not excluded: cheap and harmless)."""
    seen: dict[tuple[str, str], None] = {}
    for m in WIKILINK_PATTERN.finditer(text):
        seen.setdefault((m.group(1), m.group(2)), None)
    return list(seen)


_WIKILINK_A_RE = re.compile(r'<a class="wikilink" data-ref="(run|paper|log):([^"]*)"[^>]*>(.*?)</a>', re.S)


def resolve_wikilinks(body_html: str, resolver: Callable[[str, str], tuple[str, str] | None]) -> str:
    """Replace wikilink placeholders: ``resolver(kind, key)`` gives (url, label) or None for "not visible"."""

    def repl(m: re.Match[str]) -> str:
        kind, key = m.group(1), html.unescape(m.group(2))
        target = resolver(kind, key)
        if target is None:
            return f'<span class="wikilink missing">{m.group(3)}</span>'
        url, label = target
        return f'<a class="wikilink" href="{html.escape(url)}">{html.escape(label)}</a>'

    return _WIKILINK_A_RE.sub(repl, body_html)
