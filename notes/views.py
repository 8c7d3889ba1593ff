"""Pages for notes. Thin: parse the request, call a selector or a service, render a template."""
from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notes import selectors, services
from notes.importers.bibtex import notes_import_bibtex
from notes.importers.export import notes_export_zip
from notes.importers.service import MAX_IMPORT_BYTES, notes_import_markdown
from notes.models import DailyLog, LogKind, Paper, PaperStatus, ReadingList, Revision


def _editor_context(*, log: DailyLog | None, date: dt.date | None, user) -> dict:
    return {
        "log": log,
        "editor_body": log.body if log else "",
        "editor_save_url": reverse("api-log-by-date", args=[date.isoformat()]) if date else
        (reverse("api-log", args=[log.pk]) if log else ""),
        "editor_method": "PUT" if date else "PATCH",
        "editor_key": f"log:{user.pk}:{date.isoformat() if date else log.pk if log else 'new'}",
        "editor_version": log.updated_at.isoformat() if log else "",
        "editor_shared": bool(log and log.shared),
        "editor_tags": ", ".join(t.name for t in log.tags.all()) if log else "",
        "editor_has_meta": True,
        "editor_title": log.title if (log and log.kind == LogKind.NOTE) else None,
    }


@require_GET
def today(request: HttpRequest) -> HttpResponse:
    day = timezone.localdate()
    log = DailyLog.objects.filter(owner=request.user, kind=LogKind.DAY, date=day).first()
    ctx = _editor_context(log=log, date=day, user=request.user)
    ctx.update(day=day, runs=selectors.runs_of_day(request.user, day)[:50],
               yesterday=DailyLog.objects.filter(owner=request.user, kind=LogKind.DAY, date__lt=day).first())
    return render(request, "notes/today.html", ctx)


def _month_param(raw: str | None, default: dt.date) -> dt.date:
    try:
        year, month = (int(x) for x in (raw or "").split("-"))
        return dt.date(year, month, 1)
    except (ValueError, TypeError):
        return default.replace(day=1)


@require_GET
def log_timeline(request: HttpRequest) -> HttpResponse:
    latest = DailyLog.objects.filter(owner=request.user, kind=LogKind.DAY).order_by("-date").first()
    default = latest.date if latest and not request.GET.get("month") else timezone.localdate()
    month = _month_param(request.GET.get("month"), default)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    prev_month = (month - dt.timedelta(days=1)).replace(day=1)
    logs = (DailyLog.objects.filter(owner=request.user, kind=LogKind.DAY, date__gte=month, date__lt=next_month)
            .prefetch_related("tags").order_by("-date"))
    return render(request, "notes/log_timeline.html", {
        "month": month, "prev_month": prev_month, "next_month": next_month,
        "weeks": selectors.log_month_calendar(request.user, month.year, month.month),
        "logs": logs, "months": selectors.log_months(request.user)[:36],
        "notes": DailyLog.objects.filter(owner=request.user, kind=LogKind.NOTE).order_by("-updated_at")[:50],
        "shared_logs": selectors.logs_visible(request.user).exclude(owner=request.user).order_by("-date")[:20],
        "today": timezone.localdate(),
    })


@require_GET
def log_detail(request: HttpRequest, date: str) -> HttpResponse:
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        return HttpResponse("Use a date like 2021-05-12.", status=400)
    owner_name = request.GET.get("user")
    if owner_name and owner_name != request.user.get_username():
        log = get_object_or_404(selectors.logs_visible(request.user), owner__username=owner_name,
                                kind=LogKind.DAY, date=day)
        return render(request, "notes/log_detail.html", {"log": log, "day": day, "readonly": True})
    log = DailyLog.objects.filter(owner=request.user, kind=LogKind.DAY, date=day).first()
    if log is None:
        # A day inside a range ("2021-5-8 ~ 2021-5-11") belongs to the range's log.
        covering = DailyLog.objects.filter(owner=request.user, kind=LogKind.DAY, date__lt=day,
                                           end_date__gte=day).order_by("-date").first()
        if covering:
            return redirect(covering.get_absolute_url())
    ctx = _editor_context(log=log, date=day, user=request.user)
    ctx.update(day=day, readonly=False, runs=selectors.runs_of_day(request.user, day)[:50],
               linked_runs=selectors.runs_linked_from(log, request.user) if log else [])
    return render(request, "notes/log_detail.html", ctx)


@require_GET
def note_detail(request: HttpRequest, pk: int) -> HttpResponse:
    log = get_object_or_404(selectors.logs_visible(request.user), pk=pk)
    if log.kind == LogKind.DAY and log.owner_id == request.user.pk:
        return redirect(log.get_absolute_url())
    readonly = log.owner_id != request.user.pk
    ctx = {"log": log, "readonly": readonly, "day": log.date}
    if not readonly:
        ctx.update(_editor_context(log=log, date=None, user=request.user))
        ctx["linked_runs"] = selectors.runs_linked_from(log, request.user)
    return render(request, "notes/log_detail.html", ctx)


@require_http_methods(["GET", "POST"])
def note_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            note = services.note_create(owner=request.user, title=request.POST.get("title", "").strip() or "Untitled",
                                        body=request.POST.get("body", ""))
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
            return redirect("log-timeline")
        return redirect(note.get_absolute_url())
    return redirect("log-timeline")


@require_GET
def revisions(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    if kind not in ("log", "digest"):
        return HttpResponse("Unknown kind.", status=404)
    if kind == "log":
        obj = get_object_or_404(DailyLog, pk=pk, owner=request.user)
        revs = Revision.objects.filter(log=obj)
    else:
        from notes.models import Digest

        obj = get_object_or_404(Digest, pk=pk, owner=request.user)
        revs = Revision.objects.filter(digest=obj)
    return render(request, "notes/revisions.html", {"obj": obj, "revisions": revs[:200], "kind": kind})


@require_POST
def revision_restore(request: HttpRequest, pk: int) -> HttpResponse:
    revision = get_object_or_404(Revision, pk=pk, owner=request.user)
    target = services.revision_restore(revision=revision)
    messages.success(request, f"Restored the version of {timezone.localtime(revision.created_at):%Y-%m-%d %H:%M:%S}.")
    return redirect(target.get_absolute_url())


# --- papers ---------------------------------------------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
def paper_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            paper = services.paper_create(
                owner=request.user, title=request.POST.get("title", ""), url=request.POST.get("url", "").strip(),
                arxiv_id=request.POST.get("arxiv_id", "").strip(),
                tags=[t for t in request.POST.get("tags", "").split(",") if t.strip()],
            )
        except ValidationError as exc:
            messages.error(request, "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.message_dict.items()))
            return redirect("paper-list")
        return redirect(paper.get_absolute_url())
    g = request.GET
    papers = selectors.paper_list(request.user, status=g.get("status", ""), tag=g.get("tag", ""),
                                  venue=g.get("venue", ""), year=g.get("year", ""), q=g.get("q", ""),
                                  sort=g.get("sort", ""))
    mine = Paper.objects.filter(owner=request.user)
    return render(request, "notes/paper_list.html", {
        "papers": papers[:500], "filters": g, "statuses": PaperStatus.choices, "sort": g.get("sort", ""),
        "tags": sorted({t for t in mine.values_list("tags__name", flat=True) if t}),
        "years": sorted({y for y in mine.values_list("year", flat=True) if y}, reverse=True),
        "venues": sorted({v for v in mine.values_list("venue", flat=True) if v}),
        "sort_links": [("title", "Title"), ("year", "Year"), ("venue", "Venue"), ("status", "Status"),
                       ("priority", "Priority"), ("read", "Read on"), ("created", "Added")],
    })


@require_GET
def paper_detail(request: HttpRequest, pk: int) -> HttpResponse:
    paper = get_object_or_404(selectors.papers_visible(request.user).prefetch_related("tags"), pk=pk)
    digest, _ = services.digest_get_or_create(paper=paper, owner=request.user)
    others = selectors.digests_visible(request.user).filter(paper=paper).exclude(owner=request.user)
    return render(request, "notes/paper_detail.html", {
        "paper": paper, "digest": digest, "other_digests": others, "statuses": PaperStatus.choices,
        "linked_runs": selectors.runs_linked_from(paper, request.user),
        "template_body": services.digest_template_get(owner=request.user).body,
        "editor_body": digest.body, "editor_save_url": reverse("api-paper-digest", args=[paper.pk]),
        "editor_method": "PUT", "editor_key": f"digest:{request.user.pk}:{paper.pk}",
        "editor_version": digest.updated_at.isoformat(), "can_edit": paper.owner_id == request.user.pk,
        "editor_shared": digest.shared,
        "reading_lists": ReadingList.objects.filter(owner=request.user),
    })


@require_POST
def paper_edit(request: HttpRequest, pk: int) -> HttpResponse:
    paper = get_object_or_404(Paper, pk=pk, owner=request.user)
    p = request.POST
    fields: dict = {name: p.get(name, "").strip() for name in ("title", "authors", "venue", "arxiv_id", "doi", "url",
                                                                "abstract") if name in p}
    if "status" in p:
        fields["status"] = p["status"]
    for name in ("year", "priority"):
        if name in p:
            raw = p[name].strip()
            if raw and not raw.lstrip("-").isdigit():
                messages.error(request, f"{name}: give a whole number.")
                return redirect(paper.get_absolute_url())
            fields[name] = int(raw) if raw else (None if name == "year" else 0)
    if "shared" in p or "shared_present" in p:
        fields["shared"] = p.get("shared") == "on"
    try:
        services.paper_update(paper=paper, tags=[t for t in p.get("tags", "").split(",") if t.strip()]
                              if "tags" in p else None, **fields)
    except ValidationError as exc:
        messages.error(request, "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.message_dict.items()))
    else:
        messages.success(request, "Saved.")
    return redirect(paper.get_absolute_url())


@require_POST
def digest_template_edit(request: HttpRequest) -> HttpResponse:
    try:
        services.digest_template_update(owner=request.user, body=request.POST.get("body", ""))
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, "Digest template saved: new digests start from it.")
    return redirect(request.POST.get("next") if str(request.POST.get("next", "")).startswith("/papers/")
                    else "paper-list")


# --- reading lists ------------------------------------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
def reading_list_index(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            rl = services.reading_list_create(owner=request.user, title=request.POST.get("title", ""),
                                              description=request.POST.get("description", ""))
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
            return redirect("reading-list-index")
        return redirect(rl.get_absolute_url())
    lists = selectors.reading_lists_visible(request.user).prefetch_related("items")
    return render(request, "notes/reading_list_index.html", {"lists": lists})


@require_http_methods(["GET", "POST"])
def reading_list_detail(request: HttpRequest, pk: int) -> HttpResponse:
    rl = get_object_or_404(selectors.reading_lists_visible(request.user), pk=pk)
    can_edit = rl.owner_id == request.user.pk
    if request.method == "POST":
        if not can_edit:
            return HttpResponse(status=404)
        raw = request.POST.get("paper", "")
        paper = selectors.papers_visible(request.user).filter(pk=int(raw)).first() if raw.isdigit() else None
        if paper is None:
            messages.error(request, "paper: choose a paper.")
        else:
            services.reading_list_item_add(reading_list=rl, paper=paper, note=request.POST.get("note", ""))
        return redirect(rl.get_absolute_url())
    items = rl.items.select_related("paper")
    in_list = {i.paper_id for i in items}
    return render(request, "notes/reading_list_detail.html", {
        "rl": rl, "items": items, "can_edit": can_edit,
        "candidates": selectors.papers_visible(request.user).exclude(pk__in=in_list).order_by("title")[:500],
    })


# --- search, import, export, runs ---------------------------------------------------------------------------------

@require_GET
def search_page(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    kind = request.GET.get("kind", "")
    if (problem := selectors.search_query_error(q)) is not None:
        return render(request, "notes/search.html", {"q": q[:selectors.MAX_SEARCH_CHARS], "kind": kind,
                                                     "results": [], "error": problem}, status=400)
    results = selectors.search(request.user, q, kinds={kind} if kind in ("log", "paper", "digest") else None) if q else []
    return render(request, "notes/search.html", {"q": q, "kind": kind, "results": results})


@require_http_methods(["GET", "POST"])
def import_page(request: HttpRequest) -> HttpResponse:
    report = None
    if request.method == "POST":
        upload = request.FILES.get("file")
        fmt = request.POST.get("format", "auto")
        if upload is None:
            messages.error(request, "file: choose a file to import.")
        elif upload.size > MAX_IMPORT_BYTES:
            return HttpResponse(f"File too large: at most {MAX_IMPORT_BYTES // (1024 * 1024)} MB.", status=413)
        else:
            try:
                text = upload.read().decode("utf-8-sig")
                if fmt == "bibtex" or (fmt == "auto" and upload.name.lower().endswith(".bib")):
                    report = notes_import_bibtex(owner=request.user, text=text, filename=upload.name)
                else:
                    report = notes_import_markdown(owner=request.user, text=text, filename=upload.name,
                                                   mode=fmt if fmt in ("journal", "paper_stack") else "auto")
            except UnicodeDecodeError:
                messages.error(request, "file: not UTF-8 text.")
            except ValidationError as exc:
                messages.error(request, "; ".join(exc.messages))
    from notes.models import ImportRecord

    return render(request, "notes/import.html", {
        "report": report, "history": ImportRecord.objects.filter(owner=request.user)[:20],
    }, status=400 if request.method == "POST" and report is None else 200)


@require_GET
def export_zip(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(notes_export_zip(owner=request.user), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="labbook-notes-{timezone.localdate()}.zip"'
    return response


@require_POST
def run_add_to_today(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(selectors.runs_visible(request.user), pk=pk)
    log = services.log_add_run_to_today(owner=request.user, run=run)
    if request.headers.get("accept", "").startswith("application/json"):
        return JsonResponse({"log": log.get_absolute_url(), "date": log.date.isoformat()})
    messages.success(request, f"Linked run #{run.pk} from today's log.")
    target = str(request.POST.get("next", ""))
    # Only a path on this site: "//evil", "/\\evil" and "https://evil" would send the user elsewhere.
    safe = target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    return redirect(target if safe else f"/runs/{run.pk}/")
