"""Pure parsing (no database) of Markdown journals and paper stacks into logs, notes and papers.

Rules, from real files (see tests/notes/test_import_*.py for one test per quirk):
* Jekyll front matter (``---`` … ``---`` at the top) is kept apart, never rendered.
* A heading whose text starts with a date opens an entry: any level ``#``–``######``, an ASCII or full-width space
  after the ``#``s, no zero padding needed, ranges ``a ~ b``, ``a~b``, ``a - b``, ``2019-11-16/17``; text after the
  date becomes the entry's title. A date that is not a date (``20202-10-28``) still opens an entry, imported as an
  undated note with a warning.
* Any other heading stays inside the entry it appears in, except: a heading right after a thematic break (``---``)
  and well-known list sections (Done, TODO, …), which become undated notes of their own.
* Lines inside fenced code never count as headings.
* Text before the first entry is kept as a separate undated note.
* Paper stack mode: a top-level ``* [Title](url)`` bullet or a ``# [Title](url)`` heading is a paper; its nested
  bullets (or the ``🔑 Key:`` … ``💡 Ideas:`` sections that follow it, or the heading's section) are its digest.
"""
from __future__ import annotations

import datetime as dt
import re
import textwrap
from dataclasses import dataclass, field

HEADING_RE = re.compile(r"^(#{1,6})(?:[ \t\u3000]+|(?=\d))(.*?)[ \t\u3000]*#*[ \t]*$")
_DATE = r"(?P<y{n}>\d{{4,5}})[-./年](?P<m{n}>\d{{1,2}})[-./月](?P<d{n}>\d{{1,2}})日?"
DATE_START_RE = re.compile(r"^" + _DATE.format(n=1))
RANGE_RE = re.compile(
    r"^(?:\s*(?:~|～|〜|–|—|\bto\b|-)\s*(?:(?P<y2>\d{4,5})[-./年])?(?:(?P<m2>\d{1,2})[-./月])?(?P<d2>\d{1,2})日?"
    r"|/(?P<dd>\d{1,2})日?)(?=\s|$|[,:，：])"
)
FENCE_RE = re.compile(r"^[ \t]*(?:[*+-][ \t]+)?(`{3,}|~{3,})")
RULE_RE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
SECTION_NAME_RE = re.compile(r"^(done|todo|to-do|to do|backlog|ideas|someday|已完成|完成|待办|待做)\b", re.I)
PAPER_LINK_RE = re.compile(r"^\[(?P<title>[^\]]+)\]\((?P<url>[^)\s]*)\)(?P<rest>.*)$")
PAPER_BULLET_RE = re.compile(r"^[*+-][ \t]+(?P<link>\[[^\]]+\]\([^)\s]*\).*)$")
TEMPLATE_SECTION_RE = re.compile(
    r"^[*+-][ \t]+\S{0,3}\s*(Key|Source|Motivation|Methodology|Method|Exps?|Experiments|Ideas?|Results?|Notes?)"
    r"\s*[:：]", re.I
)
PAPER_HOSTS = ("arxiv.org", "doi.org", "openreview.net", "aclanthology", "proceedings", "papers.nips.cc",
               "thecvf.com", "ieeexplore", "dl.acm.org", "springer", "semanticscholar", "paperswithcode",
               "openaccess", "neurips.cc", "mlr.press", "biorxiv", "sciencedirect", "nature.com")
ARXIV_RE = re.compile(r"arxiv\.org/(?:abs|pdf)/(?P<id>(?:\d{4}\.\d{4,5})|(?:[a-z\-]+(?:\.[A-Z]{2})?/\d{7}))", re.I)


@dataclass
class DateHeading:
    start: dt.date | None  # None when malformed
    end: dt.date | None
    rest: str
    raw_date: str
    problem: str = ""


@dataclass
class Section:
    kind: str  # preamble | log | note | paper
    heading: str = ""  # the raw heading line
    title: str = ""
    date: dt.date | None = None
    end_date: dt.date | None = None
    lines: list[str] = field(default_factory=list)
    line_no: int = 0
    url: str = ""
    arxiv_id: str = ""
    tags: list[str] = field(default_factory=list)
    warning: str = ""
    head_lines: int = 0  # headings folded into a note's body while it had no content of its own

    @property
    def body(self) -> str:
        lines = list(self.lines)
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            return ""
        text = "\n".join(lines)
        if self.kind == "paper":
            text = textwrap.dedent(text)
        return text + "\n"

    @property
    def has_content(self) -> bool:
        return any(line.strip() for line in self.lines[self.head_lines:])


@dataclass
class ParsedDocument:
    mode: str  # journal | paper_stack
    front_matter: str = ""
    meta: dict = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Section]:
        return [s for s in self.sections if s.kind == kind]


def _make_date(y: str, m: str, d: str) -> tuple[dt.date | None, str]:
    if len(y) != 4:
        return None, f"year '{y}' has {len(y)} digits"
    try:
        return dt.date(int(y), int(m), int(d)), ""
    except ValueError as exc:
        return None, str(exc)


def parse_date_heading(text: str) -> DateHeading | None:
    """The date (range) a heading's text starts with, or None when it does not start with a date at all."""
    m = DATE_START_RE.match(text)
    if not m:
        return None
    y, mo, d = m.group("y1"), m.group("m1"), m.group("d1")
    start, problem = _make_date(y, mo, d)
    rest = text[m.end():]
    end = None
    r = RANGE_RE.match(rest)
    if r:
        if r.group("dd"):
            end_parts = (y, mo, r.group("dd"))
        else:
            end_parts = (r.group("y2") or y, r.group("m2") or mo, r.group("d2"))
        if start is not None:
            end, end_problem = _make_date(*end_parts)
            if end is not None and end < start:
                problem, end = f"range ends ({end}) before it starts ({start})", None
            elif end_problem:
                problem = f"end of range: {end_problem}"
        rest = rest[r.end():]
    elif rest and not re.match(r"^[\s,:，：)\]]", rest):
        return None  # "2020-01-01x" is not a dated heading
    raw = text[: len(text) - len(rest)].strip()
    return DateHeading(start=start, end=end, rest=rest.strip(" \t\u3000:：-"), raw_date=raw, problem=problem)


def is_paper_link(title: str, url: str) -> bool:
    """A link that names a paper rather than a tool or a page: a known paper host, a PDF, an empty URL or a title of
    three words or more (a "Reading sheet" link is not a paper)."""
    low = url.lower()
    return (not url or any(h in low for h in PAPER_HOSTS) or low.endswith(".pdf")
            or len(re.findall(r"\w+", title)) >= 3)


def arxiv_id_from(url: str) -> str:
    m = ARXIV_RE.search(url)
    return m.group("id") if m else ""


def split_front_matter(text: str) -> tuple[str, list[str], int]:
    """(raw front matter, all lines, index of the first line after it)."""
    lines = text.split("\n")
    if lines and lines[0].strip() == "---":
        for j in range(1, len(lines)):
            if lines[j].strip() in ("---", "..."):
                return "\n".join(lines[1:j]) + "\n", lines, j + 1
    return "", lines, 0


def _front_matter_meta(raw: str) -> dict:
    if not raw:
        return {}
    import yaml

    try:
        meta = yaml.safe_load(raw)
    except yaml.YAMLError:
        return {}
    return meta if isinstance(meta, dict) else {}


def parse_markdown(text: str, mode: str = "auto", filename: str = "") -> ParsedDocument:
    """Parse a journal (``mode="journal"``), a paper stack (``"paper_stack"``) or guess (``"auto"``)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    if mode == "auto":
        as_stack = _parse(text, "paper_stack", filename)
        papers = len(as_stack.of_kind("paper"))
        dated = len(as_stack.of_kind("log"))
        return as_stack if papers >= 2 and papers * 2 >= dated else _parse(text, "journal", filename)
    if mode not in ("journal", "paper_stack"):
        raise ValueError(f"unknown mode {mode!r}")
    return _parse(text, mode, filename)


def _parse(text: str, mode: str, filename: str) -> ParsedDocument:
    fm_raw, lines, first = split_front_matter(text)
    doc = ParsedDocument(mode=mode, front_matter=fm_raw, meta=_front_matter_meta(fm_raw))
    preamble_title = str(doc.meta.get("title") or "").strip() or filename.rsplit("/", 1)[-1] or "Imported note"
    current = Section(kind="preamble", title=preamble_title, line_no=first + 1)
    doc.sections.append(current)
    context: Section = current  # where non-paper lines go back to after a bullet paper ends
    fence: str | None = None
    after_rule = False
    category = ""

    def open_section(sec: Section) -> Section:
        doc.sections.append(sec)
        return sec

    for index in range(first, len(lines)):
        line = lines[index]
        line_no = index + 1
        fm = FENCE_RE.match(line)
        if fence is not None:
            if fm and fm.group(1)[0] == fence[0] and len(fm.group(1)) >= len(fence):
                fence = None
            current.lines.append(line)
            continue
        if fm and not line.rstrip().endswith(fm.group(1) + fm.group(1)[0]) and line.count(fm.group(1)) == 1:
            fence = fm.group(1)
        heading = HEADING_RE.match(line) if fence is None else None
        stripped = line.strip()

        # A bullet paper's digest continues over indented lines, blank lines and template-section bullets.
        if current.kind == "paper" and not current.heading.startswith("#") and fence is None:
            if not stripped or line[:1] in (" ", "\t") or TEMPLATE_SECTION_RE.match(line):
                current.lines.append(line)
                continue
            current = context
        if heading and fence is None:
            level, htext = len(heading.group(1)), heading.group(2).strip()
            dh = parse_date_heading(htext)
            link = PAPER_LINK_RE.match(htext) if mode == "paper_stack" else None
            if dh is not None:
                category = ""
                if dh.start is None or dh.problem and dh.start is None:
                    warning = f"line {line_no}: '{dh.raw_date}' is not a valid date ({dh.problem}); imported as an undated note"
                    doc.warnings.append(warning)
                    current = context = open_section(Section(kind="note", heading=line, title=htext,
                                                             line_no=line_no, warning=warning))
                else:
                    if dh.problem:
                        doc.warnings.append(f"line {line_no}: {dh.problem}; imported without an end date")
                    current = context = open_section(Section(kind="log", heading=line, title=dh.rest,
                                                             date=dh.start, end_date=dh.end, line_no=line_no))
                after_rule = False
                continue
            if link and is_paper_link(link.group("title"), link.group("url")):
                current = open_section(Section(
                    kind="paper", heading=line, title=link.group("title").strip(), url=link.group("url"),
                    arxiv_id=arxiv_id_from(link.group("url")), line_no=line_no,
                    tags=[category] if category else [],
                ))
                if link.group("rest").strip():
                    current.lines.append(link.group("rest").strip())
                after_rule = False
                continue
            entry_level = len(HEADING_RE.match(current.heading).group(1)) if current.kind == "log" else 0
            starts_note = (
                mode == "paper_stack"
                or (after_rule and current.kind != "preamble")
                # "## Done" / "### TODO" lists: their own note, unless they are a subsection of a dated entry.
                or (SECTION_NAME_RE.match(htext) and (current.kind != "log" or level <= entry_level))
            )
            if starts_note:
                if mode == "paper_stack":
                    category = htext if level >= 2 and len(htext) <= 40 else ""
                if context.kind == "note" and not context.has_content and context is current or (
                    current.kind == "preamble" and not current.has_content and mode == "paper_stack"
                    and not current.heading
                ):
                    # A heading with nothing of its own yet: fold it into the open note instead of an empty note.
                    if not current.heading and current.kind == "preamble":
                        current.kind, current.heading, current.title = "note", line, htext
                    else:
                        current.lines.append(line)
                    current.head_lines = len(current.lines)
                else:
                    current = context = open_section(Section(kind="note", heading=line, title=htext,
                                                             line_no=line_no))
                after_rule = False
                continue
        if mode == "paper_stack" and fence is None and not line[:1].isspace():
            bullet = PAPER_BULLET_RE.match(line)
            link = PAPER_LINK_RE.match(bullet.group("link")) if bullet else None
            if link and is_paper_link(link.group("title"), link.group("url")):
                current = open_section(Section(
                    kind="paper", title=link.group("title").strip(), url=link.group("url"), heading=line,
                    arxiv_id=arxiv_id_from(link.group("url")), line_no=line_no,
                    tags=[category] if category else [],
                ))
                if link.group("rest").strip():
                    current.lines.append(link.group("rest").strip())
                after_rule = False
                continue
        current.lines.append(line)
        if stripped:
            after_rule = bool(RULE_RE.match(line))
            if after_rule and mode == "paper_stack":
                category = ""  # a thematic break closes the category (the sample's LSQ is not a NAS paper)
    doc.sections = [s for s in doc.sections if s.kind != "preamble" or s.body]
    return doc
