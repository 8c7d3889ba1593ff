"""REST API for experiment tracking. Thin: parse, check ownership (404 for others' runs), call a service or
selector, shape the answer. Errors name their field; oversized requests get 413."""
from __future__ import annotations

from operator import itemgetter
from pathlib import PurePosixPath

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.models import Count
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FileUploadParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from experiments import ingest, selectors, services, storage
from experiments.models import Artifact, Run
from experiments.query import QueryError
from experiments.serializers import (
    ArtifactOut,
    ArtifactUploadIn,
    MetricsBatchIn,
    MetricsBatchOut,
    ProjectIn,
    ProjectOut,
    RawPageOut,
    RunCreateIn,
    RunListOut,
    RunOut,
    RunsBulkIn,
    RunUpdateIn,
    SeriesResponseOut,
)
from experiments.uploads import ArtifactUploadHandler
from labbook.core.api import PayloadTooLarge, paginated

MAX_POINTS_PER_REQUEST = getattr(settings, "METRICS_MAX_POINTS_PER_REQUEST", ingest.DEFAULT_MAX_POINTS)
MAX_SERIES_POINTS = 20_000  # per key in one read; a chart needs ~2 points per pixel
MAX_RAW_PAGE = 10_000
MAX_KEYS_PER_READ = 200
MAX_STEP = 2**63 - 1  # steps are stored as PostgreSQL bigint


LIVE_POINTS_PER_BATCH = 2000  # a live chart needs the recent shape, not 10,000 points per request


def publish_live(run_id: int, event: str, data: dict) -> None:
    """Push an event to the run page's live stream (runner.streams, Redis) so that charts of runs logged by the
    Python client update as they arrive. Never fails the request: live updates are best effort."""
    try:
        from runner import streams
    except ImportError:
        return
    streams.publish(run_id, event, data)


def query_error(exc: QueryError, field: str = "q") -> ValidationError:
    return ValidationError({field: [str(exc)]})


def owned_run(request, pk: int) -> Run:
    return get_object_or_404(selectors.runs_for(request.user), pk=pk)


def int_param(request, name: str, default: int | None, *, lo: int = 0, hi: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: ["Must be an integer."]}) from None
    if value < lo or (hi is not None and value > hi):
        raise ValidationError({name: [f"Must be between {lo} and {hi}." if hi is not None else f"Must be ≥ {lo}."]})
    return value


# --- projects --------------------------------------------------------------------------------------------------------

class ProjectListApi(APIView):
    @extend_schema(responses=ProjectOut(many=True), operation_id="projects_list")
    def get(self, request):
        qs = selectors.projects_for(request.user).annotate(run_count=Count("runs"))
        return Response(ProjectOut(qs, many=True).data)

    @extend_schema(request=ProjectIn, responses={201: ProjectOut}, operation_id="projects_create")
    def post(self, request):
        data = ProjectIn(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_get_or_create(owner=request.user, name=data.validated_data["name"])
        if data.validated_data["description"] and not project.description:
            project.description = data.validated_data["description"]
            project.save(update_fields=["description"])
        project.run_count = project.runs.count()  # the same shape as the list (get-or-create may find old runs)
        return Response(ProjectOut(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    @extend_schema(responses=ProjectOut, operation_id="projects_retrieve")
    def get(self, request, pk: int):
        qs = selectors.projects_for(request.user).annotate(run_count=Count("runs"))
        return Response(ProjectOut(get_object_or_404(qs, pk=pk)).data)


# --- runs ------------------------------------------------------------------------------------------------------------

class RunListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description='filter, e.g. params.lr < 0.01 and metrics.acc > 0.9 and tag = "w4a4"'),
            OpenApiParameter("project", str, description="project slug or id"),
            OpenApiParameter("sort", str, description="column id, '-' for descending: -metrics.acc, params.lr"),
            OpenApiParameter("limit", int), OpenApiParameter("offset", int),
        ],
        responses=paginated(RunListOut(many=True), "RunList"), operation_id="runs_list",
    )
    def get(self, request):
        try:
            qs = selectors.runs_filtered(request.user, request.query_params.get("q", ""),
                                         project=request.query_params.get("project"),
                                         sort=request.query_params.get("sort", ""))
        except QueryError as exc:
            raise query_error(exc) from None
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(RunListOut(page, many=True).data)

    @extend_schema(request=RunCreateIn, responses={201: RunOut, 200: RunOut}, operation_id="runs_create")
    def post(self, request):
        data = RunCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        parent = None
        if v.get("parent") is not None:
            parent = selectors.runs_for(request.user).filter(pk=v["parent"]).first()
            if parent is None:
                raise ValidationError({"parent": ["No such run."]})
        client_id = v.pop("client_id")
        if client_id:
            existing = selectors.runs_for(request.user).filter(client_id=client_id).first()
            if existing is not None:
                return Response(RunOut(existing).data, status=status.HTTP_200_OK)
        project = services.project_get_or_create(owner=request.user, name=v.pop("project"))
        v.pop("parent")
        if v.get("started_at") is None:
            v.pop("started_at", None)
        run = services.run_create(owner=request.user, project=project, parent=parent, client_id=client_id, **v)
        return Response(RunOut(run).data, status=status.HTTP_201_CREATED)


class RunDetailApi(APIView):
    @extend_schema(responses=RunOut, operation_id="runs_retrieve")
    def get(self, request, pk: int):
        return Response(RunOut(owned_run(request, pk)).data)

    @extend_schema(request=RunUpdateIn, responses=RunOut, operation_id="runs_partial_update")
    def patch(self, request, pk: int):
        run = owned_run(request, pk)
        data = RunUpdateIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        if "parent" in v:
            pid = v.pop("parent")
            parent = None
            if pid is not None:
                parent = selectors.runs_for(request.user).filter(pk=pid).first()
                if parent is None:
                    raise ValidationError({"parent": ["No such run."]})
            v["parent"] = parent
        old_status = run.status
        try:
            run = services.run_update(run=run, **v)
        except ValueError as exc:
            raise ValidationError({"parent" if "ancestor" in str(exc) else "non_field_errors": [str(exc)]}) from None
        if run.status != old_status:
            publish_live(run.pk, "status", {"status": run.status})
        return Response(RunOut(run).data)

    @extend_schema(responses={204: None}, operation_id="runs_destroy")
    def delete(self, request, pk: int):
        services.run_delete(run=owned_run(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunLineageApi(APIView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT}, operation_id="runs_lineage",
                   description="Ancestors and descendants of a run: {nodes: [{id, name, kind, status, current}], "
                               "edges: [{from, to}]} (parent → child).")
    def get(self, request, pk: int):
        return Response(selectors.run_lineage(owned_run(request, pk)))


class RunsBulkApi(APIView):
    @extend_schema(request=RunsBulkIn, responses={200: OpenApiTypes.OBJECT}, operation_id="runs_bulk")
    def post(self, request):
        data = RunsBulkIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        if v["action"] == "delete":
            return Response({"deleted": services.runs_delete(owner=request.user, run_ids=v["ids"])})
        kwargs = {"add": v["tags"]} if v["action"] == "tag" else {"remove": v["tags"]}
        return Response({"changed": services.runs_tag(owner=request.user, run_ids=v["ids"], **kwargs)})


# --- metrics ---------------------------------------------------------------------------------------------------------

class RunMetricsApi(APIView):
    """Batch ingestion. The body is parsed and validated here in one loop (no serializer per point)."""

    parser_classes: list = []

    @extend_schema(
        request=MetricsBatchIn, responses={201: MetricsBatchOut, 200: MetricsBatchOut},
        description=(f"Up to {MAX_POINTS_PER_REQUEST} points per request (413 beyond). Idempotent on (run, key, "
                     "step): a retried batch stores nothing twice; `duplicates` counts points already stored. "
                     "Row form `{\"points\": [{key, step, value, wall_time?}]}` or column form "
                     "`{\"series\": [{key, steps, values, wall_times?}]}`."),
        operation_id="runs_metrics_create",
    )
    def post(self, request, pk: int):
        run = owned_run(request, pk)
        try:
            body = request._request.body
        except RequestDataTooBig:
            raise PayloadTooLarge(
                f"Request body larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes; send at most "
                f"{MAX_POINTS_PER_REQUEST} points per request.") from None
        try:
            payload = ingest.loads(body)
        except ValueError as exc:
            raise ValidationError({"non_field_errors": [f"Body is not valid JSON: {exc}"]}) from None
        try:
            points = ingest.parse_batch(payload, max_points=MAX_POINTS_PER_REQUEST)
        except ingest.BatchTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        except ingest.BatchError as exc:
            raise ValidationError({exc.field: [exc.message]}) from None
        result = services.metrics_ingest(run=run, points=points)
        if result.stored:
            recent = sorted(points, key=itemgetter(1))[-LIVE_POINTS_PER_BATCH:]  # by step
            publish_live(run.pk, "metrics", {"points": [
                {"key": p.key, "step": p.step, "value": p.value, "wall_time": p.wall_time} for p in recent]})
        body = {"received": len(points), "stored": result.stored, "duplicates": len(points) - result.stored}
        return Response(body, status=status.HTTP_201_CREATED if result.stored else status.HTTP_200_OK)


class RunSeriesApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("keys", str, description="comma-separated metric keys (default: all)"),
            OpenApiParameter("max_points", int, description="per key, 8..20000 (default 1000)"),
            OpenApiParameter("x", str, enum=["step", "time"], description="bucket along steps or wall time"),
        ],
        responses=SeriesResponseOut, operation_id="runs_series",
    )
    def get(self, request, pk: int):
        run = owned_run(request, pk)
        max_points = int_param(request, "max_points", 1000, lo=8, hi=MAX_SERIES_POINTS)
        x = request.query_params.get("x", "step")
        if x not in ("step", "time"):
            raise ValidationError({"x": ["Must be 'step' or 'time'."]})
        keys_raw = request.query_params.get("keys", "")
        keys = [k for k in keys_raw.split(",") if k] if keys_raw else selectors.series_keys(run)
        if keys_raw and len(keys) > MAX_KEYS_PER_READ:
            raise ValidationError({"keys": [f"At most {MAX_KEYS_PER_READ} keys per request."]})
        for i, key in enumerate(keys):
            if (err := ingest.key_error(key)) is not None:
                raise ValidationError({f"keys[{i}]": [err]})
        series = [selectors.series_downsampled(run, k, max_points=max_points, x=x).as_dict() for k in keys[:MAX_KEYS_PER_READ]]
        return Response({"run": run.pk, "x": x, "series": series})


class RunSeriesRawApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("after_step", int), OpenApiParameter("limit", int)],
        responses=RawPageOut, operation_id="runs_series_raw",
    )
    def get(self, request, pk: int, key: str):
        run = owned_run(request, pk)
        if (err := ingest.key_error(key)) is not None:
            raise ValidationError({"key": [err]})
        after = int_param(request, "after_step", None, lo=-1, hi=MAX_STEP)
        limit = int_param(request, "limit", 1000, lo=1, hi=MAX_RAW_PAGE)
        rows = selectors.series_raw_page(run, key, after_step=after, limit=limit)
        next_after = rows[-1][0] if len(rows) == limit else None
        return Response({"key": key, "points": [list(r) for r in rows], "next_after_step": next_after})


# --- artifacts -------------------------------------------------------------------------------------------------------

def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"Artifact larger than the limit of {settings.ARTIFACT_MAX_BYTES} bytes "
                           "(ARTIFACT_MAX_BYTES).")


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class RunArtifactsApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(responses=ArtifactOut(many=True), operation_id="runs_artifacts_list")
    def get(self, request, pk: int):
        run = owned_run(request, pk)
        return Response(ArtifactOut(selectors.artifacts_for(run), many=True).data)

    @extend_schema(request={"multipart/form-data": ArtifactUploadIn}, responses={201: ArtifactOut},
                   operation_id="runs_artifacts_upload")
    def post(self, request, pk: int):
        run = owned_run(request, pk)
        limit = settings.ARTIFACT_MAX_BYTES
        # The multipart envelope adds a few hundred bytes; a body far past the limit is refused before reading.
        if _content_length(request) > limit + 64 * 1024:
            raise _too_large()
        handler = ArtifactUploadHandler(request._request, run_id=run.pk, max_bytes=limit)
        try:
            request._request.upload_handlers = [handler]
        except AttributeError:
            # Session auth's CSRF check already parsed the body with Django's default handlers (spooled to a
            # temporary file): stream that file instead.
            return self._store_parsed(request, run, limit)
        data = request.data
        if handler.too_large:
            raise _too_large()
        upload = data.get("file")
        if upload is None or not hasattr(upload, "tmp_path"):
            raise ValidationError({"file": ["No file was sent (multipart field 'file')."]})
        path = data.get("path") or PurePosixPath(upload.name or "").name
        kind = str(data.get("kind") or "")[:50]
        try:
            artifact = services.artifact_adopt(run=run, path=path, tmp_path=upload.tmp_path, size=upload.size,
                                               sha256=upload.sha256, kind=kind)
        except storage.UnsafePath as exc:
            upload.discard()
            raise ValidationError({"path": [str(exc)]}) from None
        return Response(ArtifactOut(artifact).data, status=status.HTTP_201_CREATED)

    def _store_parsed(self, request, run: Run, limit: int) -> Response:
        upload = request.data.get("file")
        if upload is None:
            raise ValidationError({"file": ["No file was sent (multipart field 'file')."]})
        if upload.size > limit:
            raise _too_large()
        path = request.data.get("path") or PurePosixPath(upload.name or "").name
        try:
            artifact = services.artifact_store(run=run, path=path, chunks=upload.chunks(),
                                               kind=str(request.data.get("kind") or "")[:50], max_bytes=limit)
        except storage.UnsafePath as exc:
            raise ValidationError({"path": [str(exc)]}) from None
        except storage.ArtifactTooLarge:
            raise _too_large() from None
        return Response(ArtifactOut(artifact).data, status=status.HTTP_201_CREATED)


class RunArtifactFileApi(APIView):
    parser_classes = [FileUploadParser]

    def _artifact(self, request, pk: int, path: str) -> tuple[Run, Artifact]:
        run = owned_run(request, pk)
        try:
            clean = storage.clean_relative_path(path)
        except storage.UnsafePath:
            raise Http404 from None
        return run, get_object_or_404(Artifact, run=run, path=clean)

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
                   operation_id="runs_artifacts_download")
    def get(self, request, pk: int, path: str):
        run, artifact = self._artifact(request, pk, path)
        try:
            target = storage.resolve_in_run(run.pk, artifact.path)
        except storage.UnsafePath:
            raise Http404 from None
        if not target.is_file():
            raise Http404
        # Always an attachment with a neutral type: an uploaded .html or .svg must never render in our origin.
        response = FileResponse(open(target, "rb"), as_attachment=True,  # noqa: SIM115 - FileResponse closes it
                                filename=PurePosixPath(artifact.path).name, content_type="application/octet-stream")
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        if artifact.sha256:
            response["ETag"] = f'"{artifact.sha256}"'
        return response

    @extend_schema(request={"application/octet-stream": OpenApiTypes.BINARY}, responses={201: ArtifactOut},
                   parameters=[OpenApiParameter("kind", str)], operation_id="runs_artifacts_put")
    def put(self, request, pk: int, path: str):
        """Raw body upload (streams large checkpoints without multipart encoding)."""
        run = owned_run(request, pk)
        if _content_length(request) > settings.ARTIFACT_MAX_BYTES:
            raise _too_large()
        raw = request._request

        def chunks():
            while chunk := raw.read(1 << 20):
                yield chunk

        try:
            artifact = services.artifact_store(run=run, path=path, chunks=chunks(),
                                               kind=request.query_params.get("kind", ""))
        except storage.UnsafePath as exc:
            raise ValidationError({"path": [str(exc)]}) from None
        except storage.ArtifactTooLarge:
            raise _too_large() from None
        return Response(ArtifactOut(artifact).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None}, operation_id="runs_artifacts_destroy")
    def delete(self, request, pk: int, path: str):
        _, artifact = self._artifact(request, pk, path)
        services.artifact_delete(artifact=artifact)
        return Response(status=status.HTTP_204_NO_CONTENT)
