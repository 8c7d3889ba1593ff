"""Job pages (/jobs/, /jobs/<id>/, /jobs/new/) and the live event stream (/stream/runs/<id>/, Server-Sent Events)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from experiments.models import Run
from runner import services, streams
from runner.forms import STANDARD_FIELDS, JobForm
from runner.models import Job


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = Job.objects.for_owner(request.user).select_related("run")[:100]
    return render(request, "runner/job_list.html", {"jobs": jobs})


@login_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.for_owner(request.user).select_related("run", "retry_of"), pk=job_id)
    return render(request, "runner/job_detail.html", {"job": job, "run": job.run})


@login_required
def job_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = JobForm(request.POST)
        if form.is_valid():
            try:
                job = services.job_submit(owner=request.user, spec=form.spec())
            except ValidationError as exc:
                # Each error goes on the field it names; engine fields without their own input came from
                # "Other spec fields", so they are shown there, prefixed with their name.
                for field, errors in exc.message_dict.items():
                    target = field.split(".")[0]
                    if target not in form.fields:
                        target = "extra"
                    form.add_error(target, [f"{field}: {e}" if target != field else e for e in errors])
            except services.JobLimitExceeded as exc:
                form.add_error(None, str(exc))
            else:
                job.refresh_from_db()
                if not job.dispatched:
                    messages.warning(request, "The broker is unreachable: the job is saved as queued and will be "
                                              "dispatched when the broker is back.")
                return redirect(job.get_absolute_url())
    else:
        initial, cloned_from = {}, None
        source = request.GET.get("from_run") or request.GET.get("from_job")
        if source:
            initial, cloned_from = _clone_initial(request, source, by_job="from_job" in request.GET)
        form = JobForm(initial=initial)
        return render(request, "runner/job_new.html", {"form": form, "cloned_from": cloned_from})
    return render(request, "runner/job_new.html", {"form": form})


def _clone_initial(request: HttpRequest, source: str, *, by_job: bool) -> tuple[dict, dict]:
    if not source.isdigit():
        raise Http404
    if by_job:
        job = get_object_or_404(Job.objects.for_owner(request.user), pk=int(source))
        run = job.run
    else:
        run = get_object_or_404(Run.objects.filter(owner=request.user), pk=int(source))
        job = Job.objects.filter(run=run).first()
    if job is not None:
        spec = dict(job.request or job.spec)
    else:  # a run logged from a script (the Python client): its config is the closest thing to a spec
        spec = spec_from_config(run)
    spec["name"] = f"{spec.get('name') or run.name} (clone)"[:200]
    label = f"job {job.pk} (run {run.name})" if job is not None else f"run {run.name}"
    return JobForm.initial_from_spec(spec), {"url": f"/runs/{run.pk}/", "label": label}


def spec_from_config(run: Run) -> dict:
    """A job spec from the config of a run that no job created. Top-level spec fields (model, dataset, seed, ...)
    stay where they are; flat training settings the engine knows for the run's kind (lr, epochs, batch_size, ...)
    become hyperparameters; anything else goes to the form's "other spec fields", where the engine's validation
    names it if the user submits it unchanged."""
    from runner.engine.spec import SCHEMAS

    config = run.config if isinstance(run.config, dict) and run.config else run.params
    config = config if isinstance(config, dict) else {}
    schema = SCHEMAS.get(run.kind, {})
    hyper = dict(config["hyperparameters"]) if isinstance(config.get("hyperparameters"), dict) else {}
    spec: dict = {"kind": str(config.get("kind") or run.kind)}
    for key, value in config.items():
        if key in ("kind", "hyperparameters"):
            continue
        if key in schema and key not in STANDARD_FIELDS:
            hyper.setdefault(key, value)
        else:
            spec[key] = value
    if hyper:
        spec["hyperparameters"] = hyper
    spec.setdefault("project", run.project.name)
    if run.tags:
        spec.setdefault("tags", run.tags)
    return spec


@login_required
@require_POST
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.for_owner(request.user), pk=job_id)
    try:
        services.job_cancel(job=job, user=request.user)
        messages.success(request, f"Cancel requested for job {job.pk}.")
    except services.JobStateError as exc:
        messages.error(request, str(exc))
    return redirect(request.POST.get("next") if str(request.POST.get("next", "")).startswith("/jobs/")
                    else job.get_absolute_url())


@login_required
@require_POST
def job_again(request: HttpRequest, job_id: int, action: str) -> HttpResponse:
    job = get_object_or_404(Job.objects.for_owner(request.user), pk=job_id)
    try:
        new = (services.job_resume if action == "resume" else services.job_retry)(job=job, user=request.user)
    except (services.JobStateError, services.JobLimitExceeded) as exc:
        messages.error(request, str(exc))
        return redirect(job.get_absolute_url())
    except ValidationError as exc:
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()))
        return redirect(job.get_absolute_url())
    return redirect(new.get_absolute_url())


async def run_stream(request: HttpRequest, run_id: int) -> HttpResponse:
    """Server-Sent Events of one run; resumes after ``Last-Event-ID`` (header) or ``?last_id=``.

    Async, served by the ASGI server: a viewer holds a socket and a blocking XREAD, not a thread.
    """
    user = await request.auser()
    if not user.is_authenticated:
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    if not await Run.objects.filter(pk=run_id, owner=user).aexists():
        raise Http404("no such run")
    last_id = streams.valid_event_id(request.headers.get("Last-Event-ID")) or streams.valid_event_id(
        request.GET.get("last_id"))
    response = StreamingHttpResponse(streams.sse_events(run_id, last_id), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"  # nginx: pass events through at once
    return response


async def job_stream(request: HttpRequest, job_id: int) -> HttpResponse:
    user = await request.auser()
    if not user.is_authenticated:
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    job = await Job.objects.filter(pk=job_id, owner=user).only("run_id").afirst()
    if job is None:
        raise Http404("no such job")
    return await run_stream(request, job.run_id)
