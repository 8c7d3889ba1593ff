"""Full-text search over logs, papers and digests, CJK included, on PostgreSQL and SQLite.

PostgreSQL: ``icontains`` (served by GIN trigram indexes on ``UPPER(col)``; pg_trgm makes CJK substrings findable)
OR an English ``websearch`` match; ranked by ``SearchRank`` plus trigram word similarity.
SQLite: an FTS5 table with the ``trigram`` tokenizer (``SqliteFtsIndex``), kept in sync by ``notes.services`` on every
save. Trigrams need 3 characters, so shorter terms (two-character Chinese words such as 剪枝) fall back to ``LIKE`` on
the same table. ``SqliteFtsIndex`` works on any DB-API sqlite3 connection, so tests can drive it on its own.
Snippets are built here in Python for both back ends (escaped text, matches wrapped in ``<mark>``).
"""
from __future__ import annotations

import html
import re
import sqlite3
from dataclasses import dataclass

SNIPPET_CHARS = 160  # characters of context around the first hit, enough for two lines on a phone


@dataclass
class Hit:
    kind: str  # log | paper | digest
    obj_id: int
    title: str
    body: str
    score: float


def query_terms(query: str) -> list[str]:
    """Whitespace-separated terms ("quoted phrases" kept together), lower-cased, empties dropped."""
    terms = [a or b for a, b in re.findall(r'"([^"]+)"|(\S+)', query)]
    return [t.strip().lower() for t in terms if t.strip()][:10]


def make_snippet(text: str, terms: list[str], width: int = SNIPPET_CHARS) -> str:
    """Escaped excerpt around the first matching term, every term occurrence wrapped in ``<mark>``."""
    lower = text.lower()
    first = min((i for i in (lower.find(t) for t in terms) if i >= 0), default=0)
    start = max(0, first - width // 3)
    end = min(len(text), start + width)
    excerpt = text[start:end].replace("\n", " ")
    if not terms:
        return html.escape(excerpt)
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.I)
    pieces, last = [], 0
    for m in pattern.finditer(excerpt):
        pieces.append(html.escape(excerpt[last:m.start()]))
        pieces.append(f"<mark>{html.escape(m.group(0))}</mark>")
        last = m.end()
    pieces.append(html.escape(excerpt[last:]))
    return ("…" if start else "") + "".join(pieces) + ("…" if end < len(text) else "")


class SqliteFtsIndex:
    """The SQLite side: one FTS5 trigram table over every searchable object, with owner and sharing columns."""

    TABLE = "notes_search_fts"

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def ensure_schema(self) -> None:
        self.conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.TABLE} USING fts5("
            "kind UNINDEXED, obj_id UNINDEXED, owner_id UNINDEXED, shared UNINDEXED, title, body, "
            "tokenize='trigram')"
        )

    def upsert(self, *, kind: str, obj_id: int, owner_id: int, shared: bool, title: str, body: str) -> None:
        self.delete(kind=kind, obj_id=obj_id)
        self.conn.execute(
            f"INSERT INTO {self.TABLE} (kind, obj_id, owner_id, shared, title, body) VALUES (?, ?, ?, ?, ?, ?)",
            (kind, obj_id, owner_id, 1 if shared else 0, title, body),
        )

    def delete(self, *, kind: str, obj_id: int) -> None:
        self.conn.execute(f"DELETE FROM {self.TABLE} WHERE kind = ? AND obj_id = ?", (kind, obj_id))

    def search(self, query: str, *, viewer_id: int, limit: int = 50) -> list[Hit]:
        """Every term must match (AND). Terms of 3+ characters use the trigram index with bm25 ranking."""
        terms = query_terms(query)
        if not terms:
            return []
        long_terms = [t for t in terms if len(t) >= 3]
        short_terms = [t for t in terms if len(t) < 3]
        where = ["(owner_id = ? OR shared = 1)"]
        params: list[object] = [viewer_id]
        if long_terms:
            where.append(f"{self.TABLE} MATCH ?")
            params.append(" AND ".join('"' + t.replace('"', '""') + '"' for t in long_terms))
        for t in short_terms:
            like = "%" + t.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(title LIKE ? ESCAPE '\\' OR body LIKE ? ESCAPE '\\')")
            params += [like, like]
        # bm25 is negative (lower is better) and only defined with MATCH; LIKE-only queries rank by hit count.
        score = f"-bm25({self.TABLE}, 0, 0, 0, 0, 10.0, 1.0)" if long_terms else "0"
        rows = self.conn.execute(
            f"SELECT kind, obj_id, title, body, {score} AS score FROM {self.TABLE} WHERE {' AND '.join(where)} "
            f"ORDER BY score DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        hits = [Hit(kind=r[0], obj_id=int(r[1]), title=r[2], body=r[3], score=float(r[4])) for r in rows]
        if not long_terms:
            for h in hits:
                text = (h.title + " " + h.body).lower()
                h.score = sum(text.count(t) for t in terms) + 5 * sum(h.title.lower().count(t) for t in terms)
            hits.sort(key=lambda h: h.score, reverse=True)
        return hits
