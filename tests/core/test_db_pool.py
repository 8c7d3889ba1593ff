"""The web server (labbook.asgi) keeps a pool of PostgreSQL connections: under ASGI each request runs in a thread
of its own, and without a pool each one would open and authenticate a new connection (~10 ms of a metrics batch)."""
from __future__ import annotations

import requests
from django.db import connection

from tests.experiments.factories import make_run


def server_connections() -> dict[int, object]:
    """{pid: backend start} of the other sessions on the test database (the server's)."""
    with connection.cursor() as cur:
        cur.execute("SELECT pid, backend_start FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
        return dict(cur.fetchall())


def test_the_web_server_reuses_pooled_connections_across_requests(asgi_server, api_token, user):
    run = make_run(user)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {api_token}"
    url = f"{asgi_server.url}/api/runs/{run.pk}/metrics/"

    def send(steps: range) -> None:
        for step in steps:
            resp = http.post(url, json={"points": [{"key": "loss", "step": step, "value": 1.0}]}, timeout=30)
            assert resp.status_code == 201, resp.text

    send(range(0, 10))
    first = server_connections()
    assert first, "no connection outlived its request: the server is not pooling"
    send(range(10, 30))
    then = server_connections()
    # The same connections served the later requests (none closed and reopened), and their number stays bounded.
    assert set(first.items()) <= set(then.items())
    assert len(then) <= 20


def test_a_database_that_cannot_be_reached_is_a_503_that_says_retry(api_client, monkeypatch):
    """What a request gets when no connection can be had (the database restarting, or the pool exhausted past
    DB_POOL_TIMEOUT): a JSON 503, which the Python client retries, rather than a 500."""
    from django.db import OperationalError

    from experiments import selectors

    def unreachable(user):
        raise OperationalError("couldn't get a connection after 10.00 sec")

    monkeypatch.setattr(selectors, "runs_for", unreachable)
    resp = api_client.get("/api/runs/")
    assert resp.status_code == 503
    assert resp.json()["detail"] == "The database is unavailable; retry in a moment."
