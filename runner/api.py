"""Job API: thin views over runner.services. Everything is scoped to the requesting user (others' jobs are 404)."""
from __future__ import annotations

import json
import threading
import time

from django.db import connection
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from labbook.core.api import PayloadTooLarge, paginated
from runner import services
from runner.conf import job_setting
from runner.models import ACTIVE_STATUSES, Job, JobStatus
from runner.registry import engine_choices
from runner.serializers import JobLogOut, JobOptionsOut, JobOut, JobSubmitIn, JobSubmitOut

# A job spec is a small JSON document; anything bigger is a mistake (or an attack), not a configuration.
MAX_SPEC_BYTES = 64 * 1024
LOG_PAGE_MAX = 2000


class TooManyJobs(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "too_many_jobs"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


_maintenance_lock = threading.Lock()
_maintenance_at = 0.0


def maintain_soon() -> None:
    """The web process also reaps lost jobs and dispatches waiting ones (in a thread, at most every interval), so a
    cluster whose only worker died still shows its jobs as lost."""
    global _maintenance_at
    now = time.monotonic()
    if now - _maintenance_at < job_setting("MAINTENANCE_INTERVAL_S") or not _maintenance_lock.acquire(blocking=False):
        return
    _maintenance_at = now

    def work():
        try:
            services.jobs_maintain()
        except Exception:  # noqa: BLE001 - best effort; workers do the same
            pass
        finally:
            connection.close()
            _maintenance_lock.release()

    threading.Thread(target=work, daemon=True).start()


def _submit_response(job: Job, code: int = status.HTTP_202_ACCEPTED) -> Response:
    job.refresh_from_db()
    if job.dispatched:
        message = f"Queued on the {job.queue} queue."
    else:
        message = ("The broker is unreachable right now: the job is saved as queued and will be dispatched "
                   "automatically when the broker is back. Nothing is lost.")
    return Response({"job": JobOut(job).data, "message": message}, status=code)


def _user_jobs(request):
    return Job.objects.for_owner(request.user).select_related("run")


class JobListCreateApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("status", str, description="filter: queued, running, ..., or 'active'"),
                    OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses=paginated(JobOut(many=True), "Job"), operation_id="jobs_list",
    )
    def get(self, request):
        maintain_soon()
        jobs = _user_jobs(request)
        wanted = request.query_params.get("status")
        if wanted == "active":
            jobs = jobs.filter(status__in=ACTIVE_STATUSES)
        elif wanted:
            if wanted not in JobStatus.values:
                return Response({"detail": "Invalid input.", "errors": {"status": [
                    f"unknown status {wanted!r}; allowed: active, {', '.join(JobStatus.values)}"]}}, status=400)
            jobs = jobs.filter(status=wanted)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response(JobOut(page, many=True).data)

    @extend_schema(request=JobSubmitIn, responses={202: JobSubmitOut, 400: None, 413: None, 429: None})
    def post(self, request):
        if len(request.body or b"") > MAX_SPEC_BYTES:
            raise PayloadTooLarge(f"A job spec is at most {MAX_SPEC_BYTES // 1024} KiB.")
        if not isinstance(request.data, dict):
            return Response({"detail": "Invalid input.", "errors": {"spec": ["must be a JSON object"]}}, status=400)
        try:
            job = services.job_submit(owner=request.user, spec=json.loads(json.dumps(request.data)))
        except services.JobLimitExceeded as exc:
            raise TooManyJobs(str(exc)) from exc
        return _submit_response(job)


class JobDetailApi(APIView):
    @extend_schema(responses=JobOut)
    def get(self, request, job_id: int):
        maintain_soon()
        return Response(JobOut(get_object_or_404(_user_jobs(request), pk=job_id)).data)


class JobCancelApi(APIView):
    @extend_schema(request=None, responses={202: JobOut, 409: None})
    def post(self, request, job_id: int):
        job = get_object_or_404(_user_jobs(request), pk=job_id)
        try:
            job = services.job_cancel(job=job, user=request.user)
        except services.JobStateError as exc:
            raise Conflict(str(exc)) from exc
        return Response(JobOut(job).data, status=status.HTTP_202_ACCEPTED)


class JobRetryApi(APIView):
    @extend_schema(request=None, responses={202: JobSubmitOut, 409: None, 429: None})
    def post(self, request, job_id: int):
        job = get_object_or_404(_user_jobs(request), pk=job_id)
        try:
            new = services.job_retry(job=job, user=request.user)
        except services.JobStateError as exc:
            raise Conflict(str(exc)) from exc
        except services.JobLimitExceeded as exc:
            raise TooManyJobs(str(exc)) from exc
        return _submit_response(new)


class JobResumeApi(APIView):
    @extend_schema(request=None, responses={202: JobSubmitOut, 409: None, 429: None})
    def post(self, request, job_id: int):
        job = get_object_or_404(_user_jobs(request), pk=job_id)
        try:
            new = services.job_resume(job=job, user=request.user)
        except services.JobStateError as exc:
            raise Conflict(str(exc)) from exc
        except services.JobLimitExceeded as exc:
            raise TooManyJobs(str(exc)) from exc
        return _submit_response(new)


class JobLogApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="return lines with seq > after (default -1)"),
                    OpenApiParameter("limit", int, description=f"at most {LOG_PAGE_MAX}"),
                    OpenApiParameter("tail", int, description="only the last N lines")],
        responses=JobLogOut,
    )
    def get(self, request, job_id: int):
        job = get_object_or_404(_user_jobs(request), pk=job_id)
        errors = {}
        values = {}
        for name, default in (("after", -1), ("limit", 500), ("tail", 0)):
            try:
                values[name] = int(request.query_params.get(name, default))
            except ValueError:
                errors[name] = ["must be an integer"]
        if errors:
            return Response({"detail": "Invalid input.", "errors": errors}, status=400)
        limit = max(1, min(LOG_PAGE_MAX, values["limit"]))
        lines = job.log_lines.filter(seq__gt=values["after"])
        if values["tail"] > 0:
            lines = list(lines.order_by("-seq")[: min(LOG_PAGE_MAX, values["tail"])])[::-1]
        else:
            lines = list(lines.order_by("seq")[:limit])
        next_after = lines[-1].seq if lines else values["after"]
        return Response(JobLogOut({"lines": lines, "next_after": next_after, "status": job.status}).data)


class JobOptionsApi(APIView):
    @extend_schema(responses=JobOptionsOut)
    def get(self, request):
        return Response(engine_choices())
