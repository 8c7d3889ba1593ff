"""Reads for notes: visibility (owner, or shared), wiki-link resolution per viewer, backlinks, search, listings."""
from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils.safestring import SafeString, mark_safe

from notes.markdown import resolve_wikilinks
from notes.models import DailyLog, Digest, Link, LogKind, Paper, PaperStatus, ReadingList
from notes.search import Hit, SqliteFtsIndex, make_snippet, query_terms
from notes.services import parse_loose_date


def visible_q(user: AbstractBaseUser) -> Q:
    return Q(owner=user) | Q(shared=True)


def logs_visible(user: AbstractBaseUser) -> QuerySet[DailyLog]:
    return DailyLog.objects.filter(visible_q(user))


def papers_visible(user: AbstractBaseUser) -> QuerySet[Paper]:
    return Paper.objects.filter(visible_q(user))


def digests_visible(user: AbstractBaseUser) -> QuerySet[Digest]:
    return Digest.objects.filter(visible_q(user)).select_related("paper")


def reading_lists_visible(user: AbstractBaseUser) -> QuerySet[ReadingList]:
    return ReadingList.objects.filter(visible_q(user))


def runs_visible(user: AbstractBaseUser):
    from experiments.models import Run

    return Run.objects.filter(owner=user)


# --- wiki links -----------------------------------------------------------------------------------------------------

def wikilink_target(*, viewer: AbstractBaseUser, author_id: int, kind: str, key: str) -> tuple[str, str] | None:
    """(url, label) for ``[[kind:key]]`` written by ``author_id``, or None when ``viewer`` may not see the target."""
    if kind == "run":
        if not key.isdigit():
            return None
        run = runs_visible(viewer).filter(pk=int(key)).only("id", "name").first()
        return (f"/runs/{run.pk}/", f"run #{run.pk} {run.name}") if run else None
    if kind == "paper":
        papers = papers_visible(viewer)
        paper = (papers.filter(pk=int(key)).first() if key.isdigit()
                 else papers.filter(slug=key).order_by("-id").first())
        return (paper.get_absolute_url(), paper.title) if paper else None
    if kind == "log":
        date = parse_loose_date(key)
        if date is None:
            return None
        log = logs_visible(viewer).filter(owner_id=author_id, kind=LogKind.DAY, date=date).first()
        if log:
            return log.get_absolute_url(), f"log {date.isoformat()}"
        if author_id == viewer.pk:  # the author's own log that does not exist yet: link to the empty day
            return f"/logs/{date.isoformat()}/", f"log {date.isoformat()}"
        return None
    return None


def rendered_html(obj: DailyLog | Digest, viewer: AbstractBaseUser) -> SafeString:
    """The stored sanitised HTML with wiki links resolved for this viewer (titles of hidden objects never shown)."""
    html = resolve_wikilinks(
        obj.body_html,
        lambda kind, key: wikilink_target(viewer=viewer, author_id=obj.owner_id, kind=kind, key=key),
    )
    return mark_safe(html)  # noqa: S308 - sanitised by nh3 on save; resolve_wikilinks escapes what it adds


def render_markdown_for(text: str, *, viewer: AbstractBaseUser, author_id: int) -> SafeString:
    """Render any Markdown (e.g. a run's notes) with [[links]] resolved for ``viewer``: for other apps' pages."""
    from notes.markdown import render_markdown

    html = resolve_wikilinks(
        render_markdown(text),
        lambda kind, key: wikilink_target(viewer=viewer, author_id=author_id, kind=kind, key=key),
    )
    return mark_safe(html)  # noqa: S308 - sanitised by nh3; resolve_wikilinks escapes what it adds


# --- backlinks ------------------------------------------------------------------------------------------------------

@dataclass
class Backlink:
    label: str
    url: str
    kind: str  # log | digest
    date: dt.date | None


def backlinks_for(obj, viewer: AbstractBaseUser) -> list[Backlink]:
    """Logs and digests the viewer may see that link to ``obj`` (a Run, Paper or DailyLog)."""
    from experiments.models import Run

    if isinstance(obj, Run):
        links = Link.objects.filter(target_kind="run", target_key=str(obj.pk))
    elif isinstance(obj, Paper):
        links = Link.objects.filter(target_kind="paper", target_key__in=[str(obj.pk), obj.slug])
    elif isinstance(obj, DailyLog):
        if obj.kind != LogKind.DAY or not obj.date:
            return []
        links = Link.objects.filter(target_kind="log", target_key=obj.date.isoformat(), owner_id=obj.owner_id)
    else:
        return []
    visible = Q(source_log__owner=viewer) | Q(source_log__shared=True) | Q(source_digest__owner=viewer) | Q(
        source_digest__shared=True
    )
    out: dict[str, Backlink] = {}
    for link in links.filter(visible).select_related("source_log", "source_digest__paper"):
        src = link.source
        if isinstance(src, DailyLog):
            if src.pk == getattr(obj, "pk", None) and isinstance(obj, DailyLog):
                continue
            out.setdefault(f"log{src.pk}", Backlink(str(src), src.get_absolute_url(), "log", src.date))
        else:
            out.setdefault(f"digest{src.pk}", Backlink(f"digest: {src.paper.title}", src.get_absolute_url(),
                                                       "digest", None))
    return sorted(out.values(), key=lambda b: (b.date or dt.date.min), reverse=True)


def runs_linked_from(obj: DailyLog | Digest | Paper, viewer: AbstractBaseUser):
    """Runs referenced by a log/digest (or, for a paper, by its digests), visible to the viewer."""
    if isinstance(obj, Paper):
        links = Link.objects.filter(source_digest__paper=obj).filter(
            Q(source_digest__owner=viewer) | Q(source_digest__shared=True))
    elif isinstance(obj, DailyLog):
        links = Link.objects.filter(source_log=obj)
    else:
        links = Link.objects.filter(source_digest=obj)
    ids = [int(k) for k in links.filter(target_kind="run").values_list("target_key", flat=True) if k.isdigit()]
    return runs_visible(viewer).filter(pk__in=ids)


def runs_of_day(user: AbstractBaseUser, day: dt.date):
    from django.utils import timezone

    start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    end = start + dt.timedelta(days=1)
    return runs_visible(user).filter(
        Q(created_at__gte=start, created_at__lt=end) | Q(started_at__gte=start, started_at__lt=end)
        | Q(ended_at__gte=start, ended_at__lt=end)
    )


# --- listings -------------------------------------------------------------------------------------------------------

PAPER_SORTS = {
    "title": "title", "-title": "-title", "year": "year", "-year": "-year", "priority": "priority",
    "-priority": "-priority", "created": "created_at", "-created": "-created_at", "read": "date_read",
    "-read": "-date_read", "venue": "venue", "-venue": "-venue", "status": "status", "-status": "-status",
}


def paper_list(user: AbstractBaseUser, *, status: str = "", tag: str = "", venue: str = "", year: str = "",
               q: str = "", sort: str = "") -> QuerySet[Paper]:
    qs = papers_visible(user).prefetch_related("tags")
    if status in PaperStatus.values:
        qs = qs.filter(status=status)
    if tag:
        qs = qs.filter(tags__name=tag)
    if venue:
        qs = qs.filter(venue__icontains=venue)
    if year.isdigit():
        qs = qs.filter(year=int(year))
    if q:
        qs = qs.filter(Q(title__icontains=q) | Q(authors__icontains=q))
    order = PAPER_SORTS.get(sort)
    if order:
        qs = qs.order_by(order, "-id")
    return qs.distinct()


def log_month_calendar(user: AbstractBaseUser, year: int, month: int) -> list[list[dict]]:
    """Weeks (Monday first) of day cells: {"date", "in_month", "log"} where log is the user's log or None."""
    first = dt.date(year, month, 1)
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    logs = {
        log.date: log
        for log in DailyLog.objects.filter(owner=user, kind=LogKind.DAY, date__gte=first - dt.timedelta(days=7),
                                           date__lte=last + dt.timedelta(days=7))
    }
    # Ranges ("2021-5-8 ~ 2021-5-11") mark every day they cover.
    for log in DailyLog.objects.filter(owner=user, kind=LogKind.DAY, end_date__gte=first, date__lte=last):
        day = log.date
        while day <= log.end_date:
            logs.setdefault(day, log)
            day += dt.timedelta(days=1)
    weeks = []
    for week in calendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
        weeks.append([{"date": d, "in_month": d.month == month, "log": logs.get(d)} for d in week])
    return weeks


def log_months(user: AbstractBaseUser) -> list[dict]:
    """Months with logs, newest first, with counts: the timeline's navigation."""
    from django.db.models.functions import TruncMonth

    return list(
        DailyLog.objects.filter(owner=user, kind=LogKind.DAY).annotate(month=TruncMonth("date"))
        .values("month").annotate(n=Count("id")).order_by("-month")
    )


# --- search ---------------------------------------------------------------------------------------------------------

@dataclass
class SearchResult:
    kind: str
    obj_id: int
    title: str
    url: str
    snippet: SafeString
    score: float
    date: dt.date | None = None


def _pg_hits(user: AbstractBaseUser, query: str, limit: int) -> list[Hit]:
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector, TrigramWordSimilarity
    from django.db.models import F, FloatField, Value
    from django.db.models.functions import Coalesce, Greatest

    terms = query_terms(query)
    ts_query = SearchQuery(query, search_type="websearch", config="english")
    hits: list[Hit] = []

    def run(qs, kind: str, text_fields: list[str], title_of, body_of):
        vector = SearchVector(*text_fields, config="english")
        term_q = Q()
        for term in terms:  # every term somewhere in the object (trigram-indexed ILIKE; works for CJK)
            any_field = Q()
            for f in text_fields:
                any_field |= Q(**{f"{f}__icontains": term})
            term_q &= any_field
        sims = [Coalesce(TrigramWordSimilarity(Value(query), F(f)), 0.0, output_field=FloatField())
                for f in text_fields]
        qs = qs.annotate(
            search_vector=vector,
            rank=SearchRank(vector, ts_query) + (Greatest(*sims) if len(sims) > 1 else sims[0]),
        ).filter(Q(search_vector=ts_query) | term_q)
        for obj in qs.order_by("-rank")[:limit]:
            hits.append(Hit(kind=kind, obj_id=obj.pk, title=title_of(obj), body=body_of(obj), score=float(obj.rank)))

    run(logs_visible(user), "log", ["title", "body"], lambda o: o.title or o.date_label, lambda o: o.body)
    run(papers_visible(user), "paper", ["title", "abstract", "authors", "venue"], lambda o: o.title,
        lambda o: "\n".join([o.authors, o.venue, o.abstract]))
    run(digests_visible(user), "digest", ["body", "paper__title"], lambda o: o.paper.title, lambda o: o.body)
    hits.sort(key=lambda h: h.score, reverse=True)
    return hits[:limit]


MAX_SEARCH_CHARS = 200  # views refuse longer queries (400); the selector truncates as a second line of defence


def search_query_error(query: str) -> str | None:
    """Why a search query is refused (too long), or None."""
    if len(query.strip()) > MAX_SEARCH_CHARS:
        return f"A search query is at most {MAX_SEARCH_CHARS} characters."
    return None


def search(user: AbstractBaseUser, query: str, *, kinds: set[str] | None = None, limit: int = 50) -> list[SearchResult]:
    """Ranked results over logs, papers and digests the user may see, each with a highlighted snippet."""
    query = query.strip()[:MAX_SEARCH_CHARS]
    if not query_terms(query):
        return []
    if connection.vendor == "postgresql":
        hits = _pg_hits(user, query, limit * 2)
    else:
        connection.ensure_connection()
        hits = SqliteFtsIndex(connection.connection).search(query, viewer_id=user.pk, limit=limit * 2)
    terms = query_terms(query)
    results: list[SearchResult] = []
    logs = {o.pk: o for o in logs_visible(user).filter(pk__in=[h.obj_id for h in hits if h.kind == "log"])}
    papers = {o.pk: o for o in papers_visible(user).filter(pk__in=[h.obj_id for h in hits if h.kind == "paper"])}
    digests = {o.pk: o for o in digests_visible(user).filter(pk__in=[h.obj_id for h in hits if h.kind == "digest"])}
    for h in hits:
        if kinds and h.kind not in kinds:
            continue
        obj = {"log": logs, "paper": papers, "digest": digests}[h.kind].get(h.obj_id)
        if obj is None:  # the index can trail a deletion or a sharing change by a moment; never show it
            continue
        body = h.body if any(t in h.body.lower() for t in terms) else (h.title + "\n" + h.body)
        results.append(SearchResult(
            kind=h.kind, obj_id=h.obj_id, title=h.title, url=obj.get_absolute_url(),
            snippet=mark_safe(make_snippet(body, terms)),  # noqa: S308 - make_snippet escapes everything
            score=h.score, date=getattr(obj, "date", None),
        ))
    return results[:limit]
