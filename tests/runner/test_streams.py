"""Live streams: Redis Streams per run, served as SSE by the real ASGI server (uvicorn)."""
from __future__ import annotations

import pytest

from runner import services, streams
from tests.runner.sse import SSEClient, session_cookie
from tests.runner.support import count_spec

pytestmark = pytest.mark.django_db(transaction=True)


def _run(user):
    return services.job_submit(owner=user, spec=count_spec()).run


def _publish(run_id: int, start: int, n: int) -> list[str]:
    return [streams.publish(run_id, "metrics", {"points": [{"key": "loss", "step": i, "value": i / 10}]})
            for i in range(start, start + n)]


def test_publish_and_read_after_an_id(user):
    run = _run(user)
    ids = _publish(run.pk, 0, 5)
    after = streams.read_events(run.pk, after=ids[1])
    assert [data["points"][0]["step"] for _id, _event, data in after] == [2, 3, 4]
    assert streams.last_event_id(run.pk) == ids[-1]


def test_reconnect_resumes_without_loss_or_duplicates(user, job_server):
    run = _run(user)
    cookies = session_cookie(user)
    url = f"{job_server.url}/stream/runs/{run.pk}/"
    start = streams.last_event_id(run.pk)
    _publish(run.pk, 0, 10)

    # A viewer reads the first 4 events and drops the connection (a network blip)
    first = SSEClient(f"{url}?last_id={start}", cookies)
    got = first.events(4, types={"metrics"})
    first.close()
    # Meanwhile more events arrive
    _publish(run.pk, 10, 10)
    # It reconnects with Last-Event-ID (what EventSource does) and gets exactly the rest, including live ones
    second = SSEClient(f"{url}?last_id={start}", cookies, last_event_id=got[-1]["id"])
    got += second.events(16, types={"metrics"})
    _publish(run.pk, 20, 2)
    got += second.events(2, types={"metrics"})
    second.close()

    steps = [e["data"]["points"][0]["step"] for e in got]
    assert steps == list(range(22))
    assert len({e["id"] for e in got}) == 22


def test_many_viewers_all_receive_every_event(user, job_server):
    run = _run(user)
    cookies = session_cookie(user)
    start = streams.last_event_id(run.pk)
    viewers = [SSEClient(f"{job_server.url}/stream/runs/{run.pk}/?last_id={start}", cookies) for _ in range(5)]
    _publish(run.pk, 0, 8)
    for viewer in viewers:
        steps = [e["data"]["points"][0]["step"] for e in viewer.events(8, types={"metrics"})]
        viewer.close()
        assert steps == list(range(8))


def test_stream_requires_login_and_ownership(user, other_user, job_server):
    run = _run(other_user)
    assert SSEClient(f"{job_server.url}/stream/runs/{run.pk}/", {}).status_code == 401
    assert SSEClient(f"{job_server.url}/stream/runs/{run.pk}/", session_cookie(user)).status_code == 404
    job = run.job
    assert SSEClient(f"{job_server.url}/stream/jobs/{job.pk}/", session_cookie(user)).status_code == 404
    own = SSEClient(f"{job_server.url}/stream/jobs/{job.pk}/", session_cookie(other_user))
    assert own.status_code == 200 and own.response.headers["Content-Type"].startswith("text/event-stream")
    own.close()
