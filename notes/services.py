"""Writes for notes. Saving a log or digest does, in this order and visibly: store the verbatim Markdown, keep a
revision, render + sanitise to ``body_html``, extract ``[[links]]`` into the link table, update the SQLite search index.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from notes.markdown import extract_wikilinks, render_markdown
from notes.models import (
    DailyLog,
    Digest,
    DigestTemplate,
    Link,
    LogKind,
    Paper,
    PaperStatus,
    ReadingList,
    ReadingListItem,
    Revision,
    Tag,
)
from notes.search import SqliteFtsIndex

MAX_BODY_CHARS = 2_000_000  # ~2 MB of text per note: far beyond a day's writing, small enough to render in <1 s

DEFAULT_DIGEST_TEMPLATE = (
    "* 🔑 Key:\n* 📎 Source:\n* 🌱 Motivation:\n* 💊 Methodology:\n* 📐 Exps:\n* 💡 Ideas:\n"
)


# --- shared steps -------------------------------------------------------------------------------------------------

def _check_body(body: str) -> None:
    if len(body) > MAX_BODY_CHARS:
        raise ValidationError({"body": f"Text is too long ({len(body)} characters, at most {MAX_BODY_CHARS})."})


def _search_index() -> SqliteFtsIndex | None:
    """The FTS5 index when the database is SQLite (PostgreSQL searches the tables themselves)."""
    if connection.vendor != "sqlite":
        return None
    connection.ensure_connection()
    return SqliteFtsIndex(connection.connection)


def search_index_sync(*, kind: str, obj: DailyLog | Paper | Digest) -> None:
    index = _search_index()
    if index is None:
        return
    if isinstance(obj, DailyLog):
        title, body = obj.title or obj.date_label, obj.body
    elif isinstance(obj, Paper):
        title, body = obj.title, "\n".join([obj.authors, obj.venue, obj.abstract, obj.arxiv_id, obj.doi])
    else:
        title, body = obj.paper.title, obj.body
    index.upsert(kind=kind, obj_id=obj.pk, owner_id=obj.owner_id, shared=obj.shared, title=title, body=body)


def _search_index_delete(*, kind: str, obj_id: int) -> None:
    index = _search_index()
    if index is not None:
        index.delete(kind=kind, obj_id=obj_id)


def _normalise_link_key(*, owner: AbstractBaseUser, kind: str, key: str) -> str:
    """Run ids and paper ids as digits, paper slugs resolved to ids (owner's or shared papers), dates as ISO."""
    if kind == "paper" and not key.isdigit():
        paper = Paper.objects.filter(slug=key).filter(_visible_q(owner)).order_by("-id").first()
        return str(paper.pk) if paper else key
    if kind == "log":
        parsed = parse_loose_date(key)
        return parsed.isoformat() if parsed else key
    return key


def _visible_q(user: AbstractBaseUser):
    from django.db.models import Q

    return Q(owner=user) | Q(shared=True)


def parse_loose_date(text: str) -> dt.date | None:
    """"2021-5-12", "2021-05-12", "2021/5/12", "2021.5.12" → date; anything else → None."""
    import re

    m = re.fullmatch(r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})", text.strip())
    if not m:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def _refresh_links(*, obj: DailyLog | Digest) -> None:
    field = "source_log" if isinstance(obj, DailyLog) else "source_digest"
    Link.objects.filter(**{field: obj}).delete()
    Link.objects.bulk_create(
        Link(owner_id=obj.owner_id, target_kind=kind,
             target_key=_normalise_link_key(owner=obj.owner, kind=kind, key=key), **{field: obj})
        for kind, key in extract_wikilinks(obj.body)
    )


def _set_tags(*, obj: DailyLog | Paper, owner: AbstractBaseUser, names: Iterable[str]) -> None:
    tags = []
    for name in dict.fromkeys(n.strip()[:100] for n in names if n and n.strip()):
        tag, _ = Tag.objects.get_or_create(owner=owner, name=name)
        tags.append(tag)
    obj.tags.set(tags)


def _save_markdown(obj: DailyLog | Digest, *, keep_revision: bool = True) -> None:
    """Render → sanitise → store → revision → links → search index, in one transaction (the caller's)."""
    _check_body(obj.body)
    obj.body_html = render_markdown(obj.body)
    obj.save()
    if keep_revision:
        if isinstance(obj, DailyLog):
            Revision.objects.create(owner_id=obj.owner_id, log=obj, body=obj.body)
        else:
            Revision.objects.create(owner_id=obj.owner_id, digest=obj, body=obj.body)
    _refresh_links(obj=obj)
    search_index_sync(kind="log" if isinstance(obj, DailyLog) else "digest", obj=obj)


# --- logs ---------------------------------------------------------------------------------------------------------

def _validate_range(date: dt.date | None, end_date: dt.date | None) -> None:
    if end_date and date and end_date < date:
        raise ValidationError({"end_date": "The end date is before the start date."})


@transaction.atomic
def log_save(
    *,
    owner: AbstractBaseUser,
    date: dt.date,
    body: str,
    end_date: dt.date | None = None,
    title: str | None = None,
    tags: Iterable[str] | None = None,
    shared: bool | None = None,
) -> DailyLog:
    """Create or replace the body of ``owner``'s log for ``date`` (the Today editor's autosave calls this)."""
    _validate_range(date, end_date)
    log, _ = DailyLog.objects.select_for_update().get_or_create(owner=owner, kind=LogKind.DAY, date=date)
    log.body = body
    if end_date is not None:
        log.end_date = end_date
    if title is not None:
        log.title = title[:300]
    if shared is not None:
        log.shared = shared
    _save_markdown(log)
    if tags is not None:
        _set_tags(obj=log, owner=owner, names=tags)
    return log


class EditConflict(Exception):
    """The text changed elsewhere (another tab, a device, "add to today") since the editor loaded it.

    The text that was sent is not lost: it is kept as a revision of the object before this is raised.
    """

    def __init__(self, current: DailyLog | Digest):
        super().__init__("changed elsewhere since you loaded it")
        self.current = current


def _stale(obj: DailyLog | Digest | None, base_version: dt.datetime | None) -> bool:
    return obj is not None and obj.pk is not None and base_version is not None and obj.updated_at != base_version


def log_save_checked(*, owner: AbstractBaseUser, date: dt.date, body: str, base_version: dt.datetime | None,
                     **fields) -> DailyLog:
    """``log_save`` for editors: refuses to overwrite a newer version (``EditConflict``), keeping the sent text as a
    revision so that nothing typed is lost. ``base_version`` is the ``updated_at`` the editor last saw."""
    with transaction.atomic():
        current = DailyLog.objects.select_for_update().filter(owner=owner, kind=LogKind.DAY, date=date).first()
        if not _stale(current, base_version) or current.body == body:
            return log_save(owner=owner, date=date, body=body, **fields)
        Revision.objects.create(owner=owner, log=current, body=body)
    raise EditConflict(current)


@transaction.atomic
def log_update(
    *,
    log: DailyLog,
    body: str | None = None,
    title: str | None = None,
    end_date: dt.date | None = None,
    tags: Iterable[str] | None = None,
    shared: bool | None = None,
    heading: str | None = None,
) -> DailyLog:
    if body is not None:
        log.body = body
    if title is not None:
        log.title = title[:300]
    if end_date is not None:
        _validate_range(log.date, end_date)
        log.end_date = end_date
    if shared is not None:
        log.shared = shared
    if heading is not None:
        log.heading = heading[:500]
    _save_markdown(log)
    if tags is not None:
        _set_tags(obj=log, owner=log.owner, names=tags)
    return log


@transaction.atomic
def note_create(
    *, owner: AbstractBaseUser, title: str, body: str, tags: Iterable[str] = (), shared: bool = False,
    heading: str = "", date: dt.date | None = None,
) -> DailyLog:
    """An undated note (text before the first date of a journal, a "Done"/"TODO" section, a scratch page)."""
    note = DailyLog(owner=owner, kind=LogKind.NOTE, title=title[:300], body=body, shared=shared,
                    heading=heading[:500], date=date)
    _save_markdown(note)
    _set_tags(obj=note, owner=owner, names=tags)
    return note


@transaction.atomic
def log_append(*, owner: AbstractBaseUser, date: dt.date, text: str) -> DailyLog:
    """Append a paragraph to the day's log (creating it), separated by a blank line; nothing is overwritten."""
    log, _ = DailyLog.objects.select_for_update().get_or_create(owner=owner, kind=LogKind.DAY, date=date)
    if log.body and not log.body.endswith("\n\n"):
        log.body += "\n" if log.body.endswith("\n") else "\n\n"
    log.body += text
    _save_markdown(log)
    return log


@transaction.atomic
def log_add_run_to_today(*, owner: AbstractBaseUser, run) -> DailyLog:
    """Link a run from today's log (idempotent: a run already linked today is not added twice)."""
    if run.owner_id != owner.pk:
        raise ValidationError({"run": "You can only link your own runs."})
    today = timezone.localdate()
    log = DailyLog.objects.filter(owner=owner, kind=LogKind.DAY, date=today).first()
    ref = f"[[run:{run.pk}]]"
    if log and ref in log.body:
        return log
    return log_append(owner=owner, date=today, text=f"* {ref} {run.name}\n")


@transaction.atomic
def log_delete(*, log: DailyLog) -> None:
    _search_index_delete(kind="log", obj_id=log.pk)
    log.delete()


@transaction.atomic
def revision_restore(*, revision: Revision) -> DailyLog | Digest:
    """Put an old body back; the current one is kept as a revision too, so restoring is itself undoable."""
    target = revision.log or revision.digest
    assert target is not None
    target.body = revision.body
    _save_markdown(target)
    return target


# --- papers and digests -------------------------------------------------------------------------------------------

def _unique_slug(*, owner: AbstractBaseUser, title: str, exclude_id: int | None = None) -> str:
    base = (slugify(title, allow_unicode=True) or "paper")[:180]
    slug, n = base, 2
    qs = Paper.objects.filter(owner=owner)
    if exclude_id:
        qs = qs.exclude(pk=exclude_id)
    while qs.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


PAPER_FIELDS = ("title", "authors", "year", "venue", "arxiv_id", "doi", "url", "bibtex_key", "bibtex", "abstract",
                "status", "priority", "date_read", "shared")


@transaction.atomic
def paper_create(*, owner: AbstractBaseUser, title: str, tags: Iterable[str] = (), **fields) -> Paper:
    title = title.strip()
    if not title:
        raise ValidationError({"title": "A paper needs a title."})
    unknown = set(fields) - set(PAPER_FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "Unknown field."})
    paper = Paper(owner=owner, title=title[:500], slug=_unique_slug(owner=owner, title=title), **fields)
    if paper.status == PaperStatus.READ and not paper.date_read:
        paper.date_read = timezone.localdate()
    paper.full_clean(exclude=["owner", "slug"])
    paper.save()
    _set_tags(obj=paper, owner=owner, names=tags)
    search_index_sync(kind="paper", obj=paper)
    return paper


@transaction.atomic
def paper_update(*, paper: Paper, tags: Iterable[str] | None = None, **fields) -> Paper:
    unknown = set(fields) - set(PAPER_FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "Unknown field."})
    was_read = paper.status == PaperStatus.READ
    for name, value in fields.items():
        setattr(paper, name, value)
    if "title" in fields:
        paper.title = paper.title.strip()[:500]
        paper.slug = _unique_slug(owner=paper.owner, title=paper.title, exclude_id=paper.pk)
    if paper.status == PaperStatus.READ and not was_read and not paper.date_read:
        paper.date_read = timezone.localdate()
    paper.full_clean(exclude=["owner", "slug"])
    paper.save()
    if tags is not None:
        _set_tags(obj=paper, owner=paper.owner, names=tags)
    search_index_sync(kind="paper", obj=paper)
    for digest in paper.digests.all():
        search_index_sync(kind="digest", obj=digest)  # digests are found by their paper's title too
    return paper


@transaction.atomic
def paper_delete(*, paper: Paper) -> None:
    for digest_id in paper.digests.values_list("id", flat=True):
        _search_index_delete(kind="digest", obj_id=digest_id)
    _search_index_delete(kind="paper", obj_id=paper.pk)
    paper.delete()


def digest_template_get(*, owner: AbstractBaseUser) -> DigestTemplate:
    template, _ = DigestTemplate.objects.get_or_create(owner=owner, defaults={"body": DEFAULT_DIGEST_TEMPLATE})
    return template


@transaction.atomic
def digest_template_update(*, owner: AbstractBaseUser, body: str) -> DigestTemplate:
    _check_body(body)
    template = digest_template_get(owner=owner)
    template.body = body
    template.save()
    return template


@transaction.atomic
def digest_get_or_create(*, paper: Paper, owner: AbstractBaseUser) -> tuple[Digest, bool]:
    """The owner's digest of ``paper``; a new one starts from the owner's (editable) template."""
    digest = Digest.objects.filter(paper=paper, owner=owner).first()
    if digest:
        return digest, False
    digest = Digest(paper=paper, owner=owner, body=digest_template_get(owner=owner).body, shared=paper.shared)
    _save_markdown(digest)
    return digest, True


@transaction.atomic
def digest_save(*, paper: Paper, owner: AbstractBaseUser, body: str, shared: bool | None = None) -> Digest:
    digest = Digest.objects.select_for_update().filter(paper=paper, owner=owner).first()
    if digest is None:
        digest = Digest(paper=paper, owner=owner)
    digest.body = body
    if shared is not None:
        digest.shared = shared
    _save_markdown(digest)
    return digest


def digest_save_checked(*, paper: Paper, owner: AbstractBaseUser, body: str, base_version: dt.datetime | None,
                        shared: bool | None = None) -> Digest:
    """``digest_save`` that refuses to overwrite a newer version; see ``log_save_checked``."""
    with transaction.atomic():
        current = Digest.objects.select_for_update().filter(paper=paper, owner=owner).first()
        if not _stale(current, base_version) or current.body == body:
            return digest_save(paper=paper, owner=owner, body=body, shared=shared)
        Revision.objects.create(owner=owner, digest=current, body=body)
    raise EditConflict(current)


@transaction.atomic
def digest_delete(*, digest: Digest) -> None:
    _search_index_delete(kind="digest", obj_id=digest.pk)
    digest.delete()


# --- reading lists ------------------------------------------------------------------------------------------------

@transaction.atomic
def reading_list_create(*, owner: AbstractBaseUser, title: str, description: str = "", shared: bool = False) -> ReadingList:
    if not title.strip():
        raise ValidationError({"title": "A reading list needs a title."})
    return ReadingList.objects.create(owner=owner, title=title.strip()[:300], description=description, shared=shared)


@transaction.atomic
def reading_list_update(*, reading_list: ReadingList, **fields) -> ReadingList:
    for name in ("title", "description", "shared"):
        if name in fields and fields[name] is not None:
            setattr(reading_list, name, fields[name])
    if not reading_list.title.strip():
        raise ValidationError({"title": "A reading list needs a title."})
    reading_list.save()
    return reading_list


@transaction.atomic
def reading_list_item_add(*, reading_list: ReadingList, paper: Paper, note: str = "") -> ReadingListItem:
    if paper.owner_id != reading_list.owner_id and not paper.shared:
        raise ValidationError({"paper": "Paper not found."})
    last = reading_list.items.order_by("-order").values_list("order", flat=True).first()
    item, created = ReadingListItem.objects.get_or_create(
        reading_list=reading_list, paper=paper, defaults={"order": (last or 0) + 1, "note": note}
    )
    if not created and note:
        item.note = note
        item.save(update_fields=["note"])
    return item


@transaction.atomic
def reading_list_item_update(*, item: ReadingListItem, note: str) -> ReadingListItem:
    item.note = note
    item.save(update_fields=["note"])
    return item


@transaction.atomic
def reading_list_item_remove(*, item: ReadingListItem) -> None:
    item.delete()


@transaction.atomic
def reading_list_reorder(*, reading_list: ReadingList, item_ids: list[int]) -> list[ReadingListItem]:
    """Set the order to exactly ``item_ids`` (every item of the list, each once)."""
    items = {i.pk: i for i in reading_list.items.select_for_update()}
    if sorted(item_ids) != sorted(items):
        raise ValidationError({"item_ids": "Give every item of the list exactly once."})
    for position, item_id in enumerate(item_ids, start=1):
        items[item_id].order = position
    ReadingListItem.objects.bulk_update(items.values(), ["order"])
    return [items[i] for i in item_ids]
