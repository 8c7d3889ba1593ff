"""``{% live_context run as live %}``: what the live panel needs (the run's job, its stream and where to resume)."""
from __future__ import annotations

from django import template

from runner import streams
from runner.models import Job

register = template.Library()

LOG_TAIL = 200


@register.simple_tag
def live_context(run) -> dict:
    if run is None or getattr(run, "pk", None) is None:
        return {}
    job = Job.objects.filter(run_id=run.pk).first()
    # Read before the log tail and metric history: the stream replays from a little earlier, so nothing is lost.
    last_id = streams.page_resume_id(run.pk)
    tail = list(job.log_lines.order_by("-seq")[:LOG_TAIL])[::-1] if job else []
    return {
        "job": job,
        "stream_url": f"/stream/runs/{run.pk}/",
        "last_id": last_id,
        "log_tail": tail,
        "last_seq": tail[-1].seq if tail else -1,
        "live": (job.is_active if job else run.status in ("queued", "running")),
    }


@register.filter
def duration(seconds) -> str:
    """1h 02m, 3m 05s, 12s."""
    if seconds is None or seconds == "":
        return "—"
    seconds = int(float(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
