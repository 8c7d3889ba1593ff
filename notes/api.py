"""REST API for notes: thin views over notes.services (writes) and notes.selectors (reads).

Reads see the user's own objects and shared ones; writes only the user's own (others' answer 404, never 403, so
existence is not leaked). Lists paginate with ``limit``/``offset``.
"""
from __future__ import annotations

import datetime as dt

from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labbook.core.api import JSONParser, PayloadTooLarge
from notes import selectors, services
from notes.importers.bibtex import notes_import_bibtex, papers_to_bibtex
from notes.importers.export import notes_export_zip
from notes.importers.service import MAX_IMPORT_BYTES, notes_import_markdown
from notes.models import (
    DailyLog,
    LogKind,
    Paper,
    PaperStatus,
    ReadingList,
    ReadingListItem,
    Revision,
    Tag,
)
from notes.serializers import (
    BodyIn,
    DigestOut,
    ImportIn,
    ImportReportOut,
    LogIn,
    LogOut,
    PaperIn,
    PaperOut,
    ReadingListIn,
    ReadingListItemIn,
    ReadingListItemOut,
    ReadingListOut,
    RenderIn,
    ReorderIn,
    RevisionOut,
    SearchResultOut,
    TagOut,
)


def _conflict(exc: services.EditConflict) -> Response:
    return Response({"detail": "Changed elsewhere since you loaded it; your text was kept in the history.",
                     "body": exc.current.body, "version": exc.current.updated_at},
                    status=status.HTTP_409_CONFLICT)


def _import_text(data: dict) -> tuple[str, str]:
    upload = data.get("file")
    if upload is not None:
        if upload.size > MAX_IMPORT_BYTES:
            raise PayloadTooLarge(f"File is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB.")
        try:
            return upload.read().decode("utf-8-sig"), data.get("filename") or upload.name
        except UnicodeDecodeError as exc:
            raise serializers.ValidationError({"file": "The file is not UTF-8 text."}) from exc
    text = data["text"]
    if len(text.encode()) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"Text is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB.")
    return text, data.get("filename", "")


# --- logs -----------------------------------------------------------------------------------------------------------

LOG_FILTERS = [
    OpenApiParameter("date_from", OpenApiTypes.DATE), OpenApiParameter("date_to", OpenApiTypes.DATE),
    OpenApiParameter("kind", OpenApiTypes.STR, enum=LogKind.values), OpenApiParameter("tag", OpenApiTypes.STR),
    OpenApiParameter("q", OpenApiTypes.STR, description="substring of title or body"),
    OpenApiParameter("mine", OpenApiTypes.BOOL, description="only your own (default: yours and shared)"),
]


def _date_param(request: Request, name: str) -> dt.date | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise serializers.ValidationError({name: "Use YYYY-MM-DD."}) from exc


class LogListCreateApi(generics.ListAPIView):
    serializer_class = LogOut

    def get_queryset(self):
        request = self.request
        qs = selectors.logs_visible(request.user).prefetch_related("tags").select_related("owner")
        if request.query_params.get("mine") in ("1", "true"):
            qs = qs.filter(owner=request.user)
        if d := _date_param(request, "date_from"):
            qs = qs.filter(date__gte=d)
        if d := _date_param(request, "date_to"):
            qs = qs.filter(date__lte=d)
        if kind := request.query_params.get("kind"):
            qs = qs.filter(kind=kind)
        if tag := request.query_params.get("tag"):
            qs = qs.filter(tags__name=tag)
        if q := request.query_params.get("q"):
            qs = qs.filter(Q(body__icontains=q) | Q(title__icontains=q))
        return qs.distinct()

    @extend_schema(parameters=LOG_FILTERS, summary="List logs and notes (yours and shared)")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=LogIn, responses={201: LogOut}, summary="Create a day's log (or replace its body) or a note")
    def post(self, request: Request) -> Response:
        data = LogIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        if v["kind"] == LogKind.NOTE:
            log = services.note_create(owner=request.user, title=v.get("title", ""), body=v.get("body", ""),
                                       tags=v.get("tags", []), shared=v.get("shared", False))
        else:
            if not v.get("date"):
                raise serializers.ValidationError({"date": "A daily log needs a date."})
            log = services.log_save(owner=request.user, date=v["date"], body=v.get("body", ""),
                                    end_date=v.get("end_date"), title=v.get("title"), tags=v.get("tags"),
                                    shared=v.get("shared"))
        return Response(LogOut(log, context={"request": request}).data, status=status.HTTP_201_CREATED)


class LogDetailApi(APIView):
    @extend_schema(responses=LogOut, summary="A log or note")
    def get(self, request: Request, pk: int) -> Response:
        log = get_object_or_404(selectors.logs_visible(request.user), pk=pk)
        return Response(LogOut(log, context={"request": request}).data)

    @extend_schema(request=LogIn, responses=LogOut, summary="Update a log (every save keeps a revision)")
    def patch(self, request: Request, pk: int) -> Response:
        log = get_object_or_404(DailyLog, pk=pk, owner=request.user)
        data = LogIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        log = services.log_update(log=log, body=v.get("body"), title=v.get("title"), end_date=v.get("end_date"),
                                  tags=v.get("tags"), shared=v.get("shared"))
        return Response(LogOut(log, context={"request": request}).data)

    @extend_schema(responses={204: None}, summary="Delete a log")
    def delete(self, request: Request, pk: int) -> Response:
        services.log_delete(log=get_object_or_404(DailyLog, pk=pk, owner=request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogByDateApi(APIView):
    @extend_schema(responses=LogOut, summary="Your log of a date")
    def get(self, request: Request, date: str) -> Response:
        log = get_object_or_404(DailyLog, owner=request.user, kind=LogKind.DAY, date=_parse_path_date(date))
        return Response(LogOut(log, context={"request": request}).data)

    @extend_schema(request=BodyIn, responses={200: LogOut, 409: OpenApiTypes.OBJECT},
                   summary="Save your log of a date (the editor's autosave)")
    def put(self, request: Request, date: str) -> Response:
        data = BodyIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            log = services.log_save_checked(owner=request.user, date=_parse_path_date(date), body=v["body"],
                                            base_version=v.get("base_version"), shared=v.get("shared"),
                                            tags=v.get("tags"))
        except services.EditConflict as exc:
            return _conflict(exc)
        return Response(LogOut(log, context={"request": request}).data)


def _parse_path_date(raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise serializers.ValidationError({"date": "Use YYYY-MM-DD."}) from exc


class RevisionListApi(generics.ListAPIView):
    serializer_class = RevisionOut

    @extend_schema(parameters=[OpenApiParameter("log", OpenApiTypes.INT), OpenApiParameter("digest", OpenApiTypes.INT)],
                   summary="Your revisions, newest first")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        qs = Revision.objects.filter(owner=self.request.user)
        for name in ("log", "digest"):
            raw = self.request.query_params.get(name)
            if raw:
                if not raw.isdigit():
                    raise serializers.ValidationError({name: "Give an id."})
                qs = qs.filter(**{f"{name}_id": int(raw)})
        return qs


class RevisionRestoreApi(APIView):
    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT}, summary="Restore a revision's body")
    def post(self, request: Request, pk: int) -> Response:
        revision = get_object_or_404(Revision, pk=pk, owner=request.user)
        target = services.revision_restore(revision=revision)
        return Response({"restored": True, "url": target.get_absolute_url(), "body": target.body})


class RenderApi(APIView):
    @extend_schema(request=RenderIn, responses=inline_serializer("Rendered", {"html": serializers.CharField()}),
                   summary="Render Markdown to sanitised HTML (live preview)")
    def post(self, request: Request) -> Response:
        data = RenderIn(data=request.data)
        data.is_valid(raise_exception=True)
        html = selectors.render_markdown_for(data.validated_data["body"], viewer=request.user,
                                             author_id=request.user.pk)
        return Response({"html": str(html)})


# --- papers and digests ---------------------------------------------------------------------------------------------

class PaperListCreateApi(generics.ListAPIView):
    serializer_class = PaperOut

    def get_queryset(self):
        p = self.request.query_params
        return selectors.paper_list(self.request.user, status=p.get("status", ""), tag=p.get("tag", ""),
                                    venue=p.get("venue", ""), year=p.get("year", ""), q=p.get("q", ""),
                                    sort=p.get("ordering", ""))

    @extend_schema(parameters=[
        OpenApiParameter("status", OpenApiTypes.STR, enum=PaperStatus.values), OpenApiParameter("tag", OpenApiTypes.STR),
        OpenApiParameter("venue", OpenApiTypes.STR), OpenApiParameter("year", OpenApiTypes.INT),
        OpenApiParameter("q", OpenApiTypes.STR),
        OpenApiParameter("ordering", OpenApiTypes.STR, enum=sorted(selectors.PAPER_SORTS)),
    ], summary="List papers (yours and shared)")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=PaperIn, responses={201: PaperOut}, summary="Add a paper")
    def post(self, request: Request) -> Response:
        data = PaperIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        paper = services.paper_create(owner=request.user, title=v.pop("title"), tags=v.pop("tags", []), **v)
        return Response(PaperOut(paper).data, status=status.HTTP_201_CREATED)


class PaperDetailApi(APIView):
    @extend_schema(responses=PaperOut, summary="A paper")
    def get(self, request: Request, pk: int) -> Response:
        return Response(PaperOut(get_object_or_404(selectors.papers_visible(request.user), pk=pk)).data)

    @extend_schema(request=PaperIn, responses=PaperOut, summary="Update a paper")
    def patch(self, request: Request, pk: int) -> Response:
        paper = get_object_or_404(Paper, pk=pk, owner=request.user)
        data = PaperIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        paper = services.paper_update(paper=paper, tags=v.pop("tags", None), **v)
        return Response(PaperOut(paper).data)

    @extend_schema(responses={204: None}, summary="Delete a paper")
    def delete(self, request: Request, pk: int) -> Response:
        services.paper_delete(paper=get_object_or_404(Paper, pk=pk, owner=request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PaperDigestApi(APIView):
    @extend_schema(responses=DigestOut, summary="Your digest of a paper (created from your template if none)")
    def get(self, request: Request, pk: int) -> Response:
        paper = get_object_or_404(selectors.papers_visible(request.user), pk=pk)
        digest, _ = services.digest_get_or_create(paper=paper, owner=request.user)
        return Response(DigestOut(digest, context={"request": request}).data)

    @extend_schema(request=BodyIn, responses={200: DigestOut, 409: OpenApiTypes.OBJECT},
                   summary="Save your digest of a paper")
    def put(self, request: Request, pk: int) -> Response:
        paper = get_object_or_404(selectors.papers_visible(request.user), pk=pk)
        data = BodyIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            digest = services.digest_save_checked(paper=paper, owner=request.user, body=v["body"],
                                                  base_version=v.get("base_version"), shared=v.get("shared"))
        except services.EditConflict as exc:
            return _conflict(exc)
        return Response(DigestOut(digest, context={"request": request}).data)


class DigestListApi(generics.ListAPIView):
    serializer_class = DigestOut

    def get_queryset(self):
        qs = selectors.digests_visible(self.request.user)
        raw = self.request.query_params.get("paper")
        if raw:
            if not raw.isdigit():
                raise serializers.ValidationError({"paper": "Give a paper id."})
            qs = qs.filter(paper_id=int(raw))
        return qs

    @extend_schema(parameters=[OpenApiParameter("paper", OpenApiTypes.INT)], summary="Digests (yours and shared)")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class DigestTemplateApi(APIView):
    TemplateOut = inline_serializer("DigestTemplate", {"body": serializers.CharField()})

    @extend_schema(responses=TemplateOut, summary="Your digest template")
    def get(self, request: Request) -> Response:
        return Response({"body": services.digest_template_get(owner=request.user).body})

    @extend_schema(request=BodyIn, responses=TemplateOut, summary="Edit your digest template")
    def put(self, request: Request) -> Response:
        data = BodyIn(data=request.data)
        data.is_valid(raise_exception=True)
        template = services.digest_template_update(owner=request.user, body=data.validated_data["body"])
        return Response({"body": template.body})


# --- reading lists ------------------------------------------------------------------------------------------------

class ReadingListListCreateApi(generics.ListAPIView):
    serializer_class = ReadingListOut

    def get_queryset(self):
        return selectors.reading_lists_visible(self.request.user).prefetch_related("items__paper")

    @extend_schema(summary="Reading lists (yours and shared)")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=ReadingListIn, responses={201: ReadingListOut}, summary="Create a reading list")
    def post(self, request: Request) -> Response:
        data = ReadingListIn(data=request.data)
        data.is_valid(raise_exception=True)
        rl = services.reading_list_create(owner=request.user, **data.validated_data)
        return Response(ReadingListOut(rl).data, status=status.HTTP_201_CREATED)


class ReadingListDetailApi(APIView):
    @extend_schema(responses=ReadingListOut, summary="A reading list with its ordered items")
    def get(self, request: Request, pk: int) -> Response:
        return Response(ReadingListOut(get_object_or_404(selectors.reading_lists_visible(request.user), pk=pk)).data)

    @extend_schema(request=ReadingListIn, responses=ReadingListOut, summary="Update a reading list")
    def patch(self, request: Request, pk: int) -> Response:
        rl = get_object_or_404(ReadingList, pk=pk, owner=request.user)
        data = ReadingListIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return Response(ReadingListOut(services.reading_list_update(reading_list=rl, **data.validated_data)).data)

    @extend_schema(responses={204: None}, summary="Delete a reading list")
    def delete(self, request: Request, pk: int) -> Response:
        get_object_or_404(ReadingList, pk=pk, owner=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReadingListItemsApi(APIView):
    @extend_schema(request=ReadingListItemIn, responses={201: ReadingListItemOut}, summary="Add a paper to a list")
    def post(self, request: Request, pk: int) -> Response:
        rl = get_object_or_404(ReadingList, pk=pk, owner=request.user)
        data = ReadingListItemIn(data=request.data)
        data.is_valid(raise_exception=True)
        paper = selectors.papers_visible(request.user).filter(pk=data.validated_data["paper"]).first()
        if paper is None:
            raise serializers.ValidationError({"paper": "Paper not found."})
        item = services.reading_list_item_add(reading_list=rl, paper=paper, note=data.validated_data.get("note", ""))
        return Response(ReadingListItemOut(item).data, status=status.HTTP_201_CREATED)


class ReadingListItemDetailApi(APIView):
    def _item(self, request: Request, pk: int, item_id: int) -> ReadingListItem:
        return get_object_or_404(ReadingListItem, pk=item_id, reading_list_id=pk, reading_list__owner=request.user)

    @extend_schema(request=inline_serializer("ItemNoteIn", {"note": serializers.CharField(allow_blank=True)}),
                   responses=ReadingListItemOut, summary="Edit an item's note")
    def patch(self, request: Request, pk: int, item_id: int) -> Response:
        note = request.data.get("note") if isinstance(request.data, dict) else None
        if not isinstance(note, str):
            raise serializers.ValidationError({"note": "Give the note as text."})
        item = services.reading_list_item_update(item=self._item(request, pk, item_id), note=note)
        return Response(ReadingListItemOut(item).data)

    @extend_schema(responses={204: None}, summary="Remove an item")
    def delete(self, request: Request, pk: int, item_id: int) -> Response:
        services.reading_list_item_remove(item=self._item(request, pk, item_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReadingListReorderApi(APIView):
    @extend_schema(request=ReorderIn, responses=ReadingListOut, summary="Set the order of a list's items")
    def post(self, request: Request, pk: int) -> Response:
        rl = get_object_or_404(ReadingList, pk=pk, owner=request.user)
        data = ReorderIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.reading_list_reorder(reading_list=rl, item_ids=data.validated_data["item_ids"])
        return Response(ReadingListOut(ReadingList.objects.get(pk=rl.pk)).data)


# --- tags, search, import, export ---------------------------------------------------------------------------------

class TagListApi(generics.ListAPIView):
    serializer_class = TagOut

    def get_queryset(self):
        return Tag.objects.filter(owner=self.request.user)

    @extend_schema(summary="Your tags")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class SearchApi(APIView):
    @extend_schema(parameters=[OpenApiParameter("q", OpenApiTypes.STR, required=True),
                               OpenApiParameter("kind", OpenApiTypes.STR, enum=["log", "paper", "digest"]),
                               OpenApiParameter("limit", OpenApiTypes.INT)],
                   responses=inline_serializer("SearchResults", {"count": serializers.IntegerField(),
                                                                 "results": SearchResultOut(many=True)}),
                   summary="Ranked search over logs, papers and digests (CJK included)")
    def get(self, request: Request) -> Response:
        q = request.query_params.get("q", "").strip()
        if not q:
            raise serializers.ValidationError({"q": "Give a query."})
        if (problem := selectors.search_query_error(q)) is not None:
            raise serializers.ValidationError({"q": problem})
        kind = request.query_params.get("kind")
        raw_limit = request.query_params.get("limit", "50")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 200:
            raise serializers.ValidationError({"limit": "Give a number from 1 to 200."})
        results = selectors.search(request.user, q, kinds={kind} if kind else None, limit=int(raw_limit))
        return Response({"count": len(results), "results": SearchResultOut(results, many=True).data})


class ImportMarkdownApi(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(request=ImportIn, responses={201: ImportReportOut}, summary="Import a Markdown journal or paper stack")
    def post(self, request: Request) -> Response:
        data = ImportIn(data=request.data)
        data.is_valid(raise_exception=True)
        text, filename = _import_text(data.validated_data)
        report = notes_import_markdown(owner=request.user, text=text, filename=filename,
                                       mode=data.validated_data["mode"])
        return Response(report.as_dict(), status=status.HTTP_201_CREATED)


class ImportBibtexApi(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(request=ImportIn, responses={201: ImportReportOut}, summary="Import papers from BibTeX")
    def post(self, request: Request) -> Response:
        data = ImportIn(data=request.data)
        data.is_valid(raise_exception=True)
        text, filename = _import_text(data.validated_data)
        report = notes_import_bibtex(owner=request.user, text=text, filename=filename)
        return Response(report.as_dict(), status=status.HTTP_201_CREATED)


class ExportZipApi(APIView):
    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY},
                   summary="Everything of yours as Markdown files in a zip")
    def get(self, request: Request) -> HttpResponse:
        response = HttpResponse(notes_export_zip(owner=request.user), content_type="application/zip")
        response["Content-Disposition"] = 'attachment; filename="labbook-notes.zip"'
        return response


class ExportBibtexApi(APIView):
    @extend_schema(responses={(200, "application/x-bibtex"): OpenApiTypes.STR}, summary="Your papers as BibTeX")
    def get(self, request: Request) -> HttpResponse:
        response = HttpResponse(papers_to_bibtex(Paper.objects.filter(owner=request.user)),
                                content_type="application/x-bibtex; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="papers.bib"'
        return response

