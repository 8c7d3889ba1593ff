"""The runs filter language: a tokenizer, a recursive-descent parser and a compiler to Django Q objects.

    params.lr < 0.01 and metrics.acc > 0.9 and tag = "w4a4"
    (kind = prune or kind = quantize) and not status = failed
    name ~ resnet and metrics.cost/macs.best <= 2e7 and env.torch ~ "2."

Grammar (keywords are case-insensitive)::

    query      := or_expr EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | primary
    primary    := "(" or_expr ")" | FIELD OP VALUE
    OP         := "=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "~" (contains, case-insensitive) | "!~"
    VALUE      := number | "string" | 'string' | bare-word | true | false | null | 2024-05-01[T12:00]

Fields: id, name, status, kind, project, tag, created, started, ended, device, seed, git, params.<key>,
metrics.<key> (last value) and metrics.<key>.last|best|min|max|count, env.<key>[.<key>...].
A number compares numerically (only with JSON numbers), a string compares as text (only with JSON strings).
Nothing is ever evaluated as code; values reach SQL as parameters.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, F, FloatField, Func, OuterRef, Q, TextField
from django.db.models.lookups import Exact, GreaterThan, GreaterThanOrEqual, IContains, LessThan, LessThanOrEqual
from django.utils import timezone

from experiments.models import RunKind, RunStatus, RunTag

METRIC_AGGREGATES = ("last", "best", "min", "max", "count")
OPS = ("=", "!=", "<", "<=", ">", ">=", "~", "!~")


class QueryError(ValueError):
    """A syntax or meaning error at a 0-based ``position`` of the query; str() gives a 1-based column."""

    def __init__(self, message: str, position: int):
        self.message = message
        self.position = position
        super().__init__(f"{message} at column {position + 1}")

    @property
    def column(self) -> int:
        return self.position + 1


# --- tokens ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str  # WORD, NUMBER, STRING, DATE, OP, LPAREN, RPAREN, EOF
    text: str
    pos: int
    value: Any = None


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/@]*")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z0-9_.])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\w:.])")
_BARE = re.compile(r"[A-Za-z0-9_.\-/@]+")  # e.g. 4bit, 8x8: a value that is neither a number nor a date
_OP = re.compile(r"==|!=|<=|>=|!~|[=<>~]")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c == "(":
            tokens.append(Token("LPAREN", c, i))
            i += 1
            continue
        if c == ")":
            tokens.append(Token("RPAREN", c, i))
            i += 1
            continue
        if c in "\"'":
            j, out = i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                out.append(text[j])
                j += 1
            if j >= n:
                raise QueryError(f"unterminated string starting with {c}", i)
            tokens.append(Token("STRING", text[i:j + 1], i, "".join(out)))
            i = j + 1
            continue
        if m := _OP.match(text, i):
            op = "=" if m.group() == "==" else m.group()
            tokens.append(Token("OP", m.group(), i, op))
            i = m.end()
            continue
        if m := _DATE.match(text, i):
            tokens.append(Token("DATE", m.group(), i, m.group()))
            i = m.end()
            continue
        if m := _NUMBER.match(text, i):
            raw = m.group()
            value: float | int = float(raw) if any(ch in raw for ch in ".eE") else int(raw)
            tokens.append(Token("NUMBER", raw, i, value))
            i = m.end()
            continue
        if (m := _WORD.match(text, i)) or (m := _BARE.match(text, i)):
            tokens.append(Token("WORD", m.group(), i, m.group()))
            i = m.end()
            continue
        raise QueryError(f"unexpected character {c!r}", i)
    tokens.append(Token("EOF", "", n))
    return tokens


# --- syntax tree -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    field: str
    op: str
    value: Any
    value_kind: str  # number, string, bool, null, date
    pos: int
    value_pos: int


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    items: tuple


@dataclass(frozen=True)
class Not:
    item: Any


MAX_QUERY_CHARS = 2000  # a filter is typed by a person; longer is a mistake or an attack
MAX_DEPTH = 32  # nested '(' and 'not': deeper would exhaust the recursive parser's stack (a 500)


class Parser:
    def __init__(self, text: str):
        if len(text) > MAX_QUERY_CHARS:
            raise QueryError(f"the query is longer than {MAX_QUERY_CHARS} characters", MAX_QUERY_CHARS)
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def _deeper(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(f"the query nests '(' and 'not' more than {MAX_DEPTH} levels deep", pos)

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "WORD" and tok.text.lower() == word

    def parse(self) -> Any:
        if self.peek().kind == "EOF":
            raise QueryError("the query is empty", 0)
        node = self.or_expr()
        tok = self.peek()
        if tok.kind != "EOF":
            if tok.kind == "RPAREN":
                raise QueryError("unbalanced ')'", tok.pos)
            raise QueryError(f"expected 'and', 'or' or the end of the query, found {tok.text!r}", tok.pos)
        return node

    def or_expr(self) -> Any:
        items = [self.and_expr()]
        while self.keyword("or"):
            self.next()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_expr(self) -> Any:
        items = [self.not_expr()]
        while self.keyword("and"):
            self.next()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def not_expr(self) -> Any:
        if self.keyword("not"):
            self._deeper(self.next().pos)
            node = Not(self.not_expr())
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Any:
        tok = self.next()
        if tok.kind == "LPAREN":
            self._deeper(tok.pos)
            node = self.or_expr()
            close = self.next()
            if close.kind != "RPAREN":
                raise QueryError(f"expected ')' to close the '(' at column {tok.pos + 1}", close.pos)
            self.depth -= 1
            return node
        if tok.kind == "EOF":
            raise QueryError("expected a field name (e.g. params.lr, metrics.acc, tag)", tok.pos)
        if tok.kind != "WORD" or tok.text.lower() in ("and", "or", "not"):
            raise QueryError(f"expected a field name, found {tok.text!r}", tok.pos)
        op = self.next()
        if op.kind != "OP":
            where = "the end of the query" if op.kind == "EOF" else repr(op.text)
            raise QueryError(f"expected an operator (= != < <= > >= ~) after '{tok.text}', found {where}", op.pos)
        val = self.next()
        if val.kind == "EOF":
            raise QueryError(f"expected a value after '{op.text}'", val.pos)
        if val.kind in ("OP", "LPAREN", "RPAREN"):
            raise QueryError(f"expected a value after '{op.text}', found {val.text!r}", val.pos)
        if val.kind == "WORD" and val.text.lower() in ("and", "or", "not"):
            raise QueryError(f"expected a value after '{op.text}', found the keyword {val.text!r}", val.pos)
        if val.kind == "NUMBER":
            value, vkind = val.value, "number"
        elif val.kind == "DATE":
            value, vkind = val.value, "date"
        elif val.kind == "STRING":
            value, vkind = val.value, "string"
        else:
            low = val.text.lower()
            if low in ("true", "false"):
                value, vkind = low == "true", "bool"
            elif low in ("null", "none"):
                value, vkind = None, "null"
            else:
                value, vkind = val.text, "string"
        return Comparison(tok.text, op.value, value, vkind, tok.pos, val.pos)


def parse(text: str) -> Any:
    return Parser(text).parse()


# --- JSON values, typed and portable ----------------------------------------------------------------------------------

class JsonPathValue(Func):
    """The value at ``path`` inside a JSON column, or NULL unless its JSON type is ``kind`` (number | text | bool).

    Typed so that ``params.lr < 0.01`` never casts a string (an error on PostgreSQL, 0.0 on SQLite) and
    ``params.arch = "resnet20"`` never matches a number. Works on PostgreSQL (jsonb) and SQLite (JSON1).
    """

    def __init__(self, field: str, path: list[str], kind: str):
        self.path = list(path)
        self.kind = kind
        super().__init__(F(field), output_field=FloatField() if kind == "number" else TextField())

    def as_sql(self, compiler, connection, **extra):
        col, col_params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            node = f"({col} #> %s::text[])"
            text = f"({col} #>> %s::text[])"
            p = [*col_params, self.path]
            if self.kind == "number":
                return (f"(CASE WHEN jsonb_typeof({node}) = 'number' THEN {text}::double precision END)", p + p)
            if self.kind == "bool":
                return f"(CASE WHEN jsonb_typeof({node}) = 'boolean' THEN {text} END)", p + p
            return f"(CASE WHEN jsonb_typeof({node}) = 'string' THEN {text} END)", p + p
        if connection.vendor == "sqlite":
            json_path = "$" + "".join("." + json.dumps(k) for k in self.path)
            p = [*col_params, json_path]
            if self.kind == "number":
                return (f"(CASE WHEN json_type({col}, %s) IN ('integer', 'real') THEN json_extract({col}, %s) END)",
                        p + p)
            if self.kind == "bool":
                return f"(CASE WHEN json_type({col}, %s) IN ('true', 'false') THEN json_type({col}, %s) END)", p + p
            return f"(CASE WHEN json_type({col}, %s) = 'text' THEN json_extract({col}, %s) END)", p + p
        raise NotImplementedError(f"the runs query language supports PostgreSQL and SQLite, not {connection.vendor}")


class JsonHasPath(Func):
    """True when the JSON column has a non-null value at ``path``."""

    conditional = True

    def __init__(self, field: str, path: list[str]):
        from django.db.models import BooleanField

        self.path = list(path)
        super().__init__(F(field), output_field=BooleanField())

    def as_sql(self, compiler, connection, **extra):
        col, col_params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            return f"(COALESCE(jsonb_typeof({col} #> %s::text[]), 'null') <> 'null')", [*col_params, self.path]
        json_path = "$" + "".join("." + json.dumps(k) for k in self.path)
        return f"(COALESCE(json_type({col}, %s), 'null') <> 'null')", [*col_params, json_path]


# --- compiler ----------------------------------------------------------------------------------------------------------

_LOOKUPS = {"=": Exact, "<": LessThan, "<=": LessThanOrEqual, ">": GreaterThan, ">=": GreaterThanOrEqual}
_SIMPLE_TEXT = {"name": "name", "device": "device", "git": "git_commit", "project": "project__name"}
_DATES = {"created": "created_at", "started": "started_at", "ended": "ended_at"}


def resolve_field(name: str, pos: int = 0) -> tuple[str, Any]:
    """Map a query field to ("json", (column, path)) or ("column", name) or ("tag", None); raise QueryError."""
    low = name.lower()
    if low in ("tag", "tags"):
        return "tag", None
    if low in ("status", "kind", "id", "seed") or low in _SIMPLE_TEXT or low in _DATES:
        return "column", low
    head, _, rest = name.partition(".")
    if head.lower() in ("params", "param", "config") and rest:
        return "json", ("params", [rest])
    if head.lower() in ("metrics", "metric") and rest:
        key, _, agg = rest.rpartition(".")
        if key and agg in METRIC_AGGREGATES:
            return "json", ("metric_summary", [key, agg])
        return "json", ("metric_summary", [rest, "last"])
    if head.lower() in ("env", "environment") and rest:
        return "json", ("environment", rest.split("."))
    raise QueryError(
        f"unknown field {name!r} (use name, status, kind, project, tag, created, params.<key>, metrics.<key>, "
        "env.<key>)", pos)


def _compare(expr: Any, op: str, value: Any) -> Q:
    if op == "!=":
        return ~Q(Exact(expr, value))
    return Q(_LOOKUPS[op](expr, value))


def _parse_date(value: str, pos: int) -> dt.datetime:
    try:
        if len(value) == 10:
            d = dt.datetime.combine(dt.date.fromisoformat(value), dt.time())
        else:
            d = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"invalid date {value!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)", pos) from None
    if timezone.is_naive(d):
        d = timezone.make_aware(d)
    return d


def _compile_comparison(c: Comparison) -> Q:
    kind, target = resolve_field(c.field, c.pos)
    op, value, vkind = c.op, c.value, c.value_kind
    if kind == "tag":
        if vkind not in ("string", "number"):
            raise QueryError("a tag is compared with a text value", c.value_pos)
        value = str(value)
        if op in ("=", "!="):
            q = Q(Exists(RunTag.objects.filter(run=OuterRef("pk"), name=value)))
        elif op in ("~", "!~"):
            q = Q(Exists(RunTag.objects.filter(run=OuterRef("pk"), name__icontains=value)))
        else:
            raise QueryError(f"'{op}' does not apply to tags (use =, != or ~)", c.value_pos)
        return ~q if op.startswith("!") else q

    if kind == "column":
        column = target
        if column in _DATES:
            if vkind not in ("date", "string"):
                raise QueryError(f"{column} is compared with a date like 2024-05-01", c.value_pos)
            if op in ("~", "!~"):
                raise QueryError(f"'{op}' does not apply to dates", c.value_pos)
            return _compare(F(_DATES[column]), op, _parse_date(str(value), c.value_pos))
        if column in ("id", "seed"):
            if vkind != "number" or isinstance(value, float) and not value.is_integer():
                raise QueryError(f"{column} is compared with a whole number", c.value_pos)
            if op in ("~", "!~"):
                raise QueryError(f"'{op}' does not apply to {column}", c.value_pos)
            return _compare(F(column), op, int(value))
        if column in ("status", "kind"):
            choices = RunStatus.values if column == "status" else RunKind.values
            if vkind != "string":
                raise QueryError(f"{column} is one of {', '.join(choices)}", c.value_pos)
            if op in ("=", "!=") and value not in choices:
                raise QueryError(f"unknown {column} {value!r} (expected one of {', '.join(choices)})", c.value_pos)
        field = _SIMPLE_TEXT.get(column, column)
        if vkind not in ("string", "number"):
            raise QueryError(f"{column} is compared with a text value", c.value_pos)
        value = str(value)
        if op in ("~", "!~"):
            q = Q(**{f"{field}__icontains": value})
            return ~q if op == "!~" else q
        return _compare(F(field), op, value)

    column, path = target
    if vkind == "null":
        if op not in ("=", "!="):
            raise QueryError("null is only compared with = or !=", c.value_pos)
        has = Q(JsonHasPath(column, path))
        return ~has if op == "=" else has
    if op in ("~", "!~"):
        if vkind != "string":
            raise QueryError(f"'{op}' (contains) needs a text value", c.value_pos)
        q = Q(IContains(JsonPathValue(column, path, "text"), value))
        return ~q if op == "!~" else q
    if column == "metric_summary" and vkind != "number":
        raise QueryError(f"metrics are numbers: expected a number after '{op}'", c.value_pos)
    if vkind == "number":
        return _compare(JsonPathValue(column, path, "number"), op, float(value))
    if vkind == "bool":
        if op not in ("=", "!="):
            raise QueryError("true/false is only compared with = or !=", c.value_pos)
        return _compare(JsonPathValue(column, path, "bool"), op, "true" if value else "false")
    return _compare(JsonPathValue(column, path, "text"), op, str(value))


def compile_node(node: Any) -> Q:
    if isinstance(node, Comparison):
        return _compile_comparison(node)
    if isinstance(node, Not):
        return ~compile_node(node.item)
    if isinstance(node, BoolOp):
        qs = [compile_node(item) for item in node.items]
        out = qs[0]
        for q in qs[1:]:
            out = (out & q) if node.op == "and" else (out | q)
        return out
    raise TypeError(node)


def compile_query(text: str) -> Q:
    """Parse and compile a query to a Q for Run querysets; an empty query matches everything."""
    if not text or not text.strip():
        return Q()
    return compile_node(parse(text))
