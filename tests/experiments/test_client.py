"""The Python client against a live server (real uvicorn on the test database), including an outage."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.db import connection

import labbook
from experiments.models import MetricPoint, Run
from labbook.client import read_offline, upload
from tests.conftest import ROOT, Proc, subprocess_env, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def start_server_on(port: int, tmp_path, name: str) -> Proc:
    log_path = tmp_path / f"{name}.log"
    popen = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "labbook.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=subprocess_env(), stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    proc = Proc(popen, log_path, url=f"http://127.0.0.1:{port}", port=port)

    def up():
        assert popen.poll() is None, proc.log()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(up, timeout=60, message="uvicorn to listen")
    return proc


def stored_steps(run_id: int, key: str) -> list[int]:
    return list(MetricPoint.objects.filter(run_id=run_id, key=key).order_by("step").values_list("step", flat=True))


def test_client_survives_an_outage_with_every_point_stored_exactly_once(asgi_server, api_token, tmp_path):
    # Given a run logging to a live server
    run = labbook.init(project="outage", config={"optim": {"lr": 0.1}}, tags=["client"], seed=3,
                       url=asgi_server.url, token=api_token, flush_interval=0.05, batch_size=40,
                       max_memory_points=60, offline_dir=tmp_path / "client")
    for step in range(100):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 400}, step=step)
    wait_until(lambda: len(stored_steps(run.id, "loss")) == 100, message="first points stored")

    # When the server goes away while the script keeps logging (memory bound forces a spill to disk) ...
    asgi_server.stop()
    for step in range(100, 300):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 400}, step=step)
    assert run._queue.file_count > 0  # spilled, not held in memory
    wait_until(lambda: run.last_error is not None, message="client noticing the outage")

    # ... and a new server comes back on the same port
    server2 = start_server_on(asgi_server.port, tmp_path, "server2")
    try:
        for step in range(300, 400):
            run.log({"loss": 1.0 / (step + 1), "acc": step / 400}, step=step)
        run.finish()
    finally:
        server2.stop()

    # Then every point is there exactly once, with its value, and the run is closed
    for key in ("loss", "acc"):
        assert stored_steps(run.id, key) == list(range(400))
        # ... and arrived in order: points have no serial id, but each batch is stored by one transaction, and
        # transaction ids grow with time, so ordering by the inserting transaction (xmin) then by step must give
        # the steps in order
        with connection.cursor() as cur:
            cur.execute("SELECT step FROM experiments_metricpoint WHERE run_id = %s AND key = %s "
                        "ORDER BY xmin::text::bigint, step", [run.id, key])
            assert [step for (step,) in cur.fetchall()] == list(range(400))
    assert MetricPoint.objects.get(run_id=run.id, key="loss", step=250).value == 1.0 / 251
    row = Run.objects.get(pk=run.id)
    assert row.status == "succeeded" and row.ended_at is not None
    assert row.metric_summary["acc"]["count"] == 400 and row.metric_summary["acc"]["last"] == 399 / 400
    assert row.params == {"optim.lr": 0.1} and row.seed == 3 and row.tags == ["client"]
    assert row.environment["python"] and row.command.startswith(sys.executable)
    assert not (tmp_path / "client" / ".spool" / f"{run.client_id}.jsonl").exists()


def test_context_manager_marks_a_crash_as_failed(asgi_server, api_token, tmp_path):
    report = tmp_path / "report.json"
    report.write_text('{"macs": 1}')
    with pytest.raises(ZeroDivisionError):
        with labbook.init(project="p", url=asgi_server.url, token=api_token, flush_interval=0.05) as run:
            run.log({"loss": 1.0})
            run.log_artifact(report, "reports/cost.json", kind="cost-report")
            run.log({"loss": float("nan")})  # skipped with a warning, never sent
            1 / 0  # noqa: B018
    row = Run.objects.get(pk=run.id)
    assert row.status == "failed"
    assert row.artifacts.get().path == "reports/cost.json"
    assert stored_steps(run.id, "loss") == [0]


def test_offline_file_uploads_later_idempotently(asgi_server, api_token, tmp_path, user):
    run = labbook.init(project="offline", config={"bits": 4}, offline=True, offline_dir=tmp_path, name="off")
    for step in range(25):
        run.log({"acc": step / 25}, step=step)
    run.set_notes("trained on the plane")
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"\x00weights" * 1000)
    run.log_artifact(ckpt, "ckpt/final.pt", kind="checkpoint")
    run.finish(status="succeeded")
    payload, points, updates, finish = read_offline(run.offline_path)
    assert payload["client_id"] == run.client_id and len(points) == 25 and finish["status"] == "succeeded"

    run_id = upload(run.offline_path, url=asgi_server.url, token=api_token)
    again = subprocess.run(
        [sys.executable, "-m", "labbook.client", "upload", str(run.offline_path), "--url", asgi_server.url,
         "--token", api_token], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert again.returncode == 0, again.stderr
    assert f"run {run_id}" in again.stdout
    row = Run.objects.get(pk=run_id)
    assert row.name == "off" and row.status == "succeeded" and row.notes == "trained on the plane"
    art = row.artifacts.get()
    assert art.path == "ckpt/final.pt" and art.kind == "checkpoint" and art.size == 8000
    assert stored_steps(run_id, "acc") == list(range(25))
    # the management command on the server side is idempotent too
    call_command("upload_offline_run", str(run.offline_path), "--user", user.username)
    assert Run.objects.filter(owner=user).count() == 1
    assert stored_steps(run_id, "acc") == list(range(25))


def test_import_labbook_needs_neither_django_nor_celery_and_celery_still_finds_the_app():
    blocker = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('django', 'celery', 'kombu', 'rest_framework'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import labbook\n"
        "from labbook.client import Run\n"
        "assert callable(labbook.init) and callable(labbook.upload)\n"
        "print('client-only ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    find = subprocess.run(
        [sys.executable, "-c", "from celery.app.utils import find_app; print(type(find_app('labbook')).__name__, "
                               "find_app('labbook').main)"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env=subprocess_env())
    assert find.returncode == 0, find.stderr
    assert find.stdout.split() == ["Celery", "labbook"]


def test_offline_reader_tolerates_a_truncated_last_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"type": "run", "payload": {"client_id": "x"}}) + "\n"
                    + json.dumps({"type": "metrics", "points": [["a", 0, 1.0, 1e9]]}) + "\n" + '{"type": "metr')
    _, points, _, finish = read_offline(path)
    assert points == [("a", 0, 1.0, 1e9)] and finish is None


def test_an_unreachable_server_at_start_falls_back_to_an_offline_file(tmp_path):
    import socket as _socket

    with _socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = labbook.init(project="p", url=f"http://127.0.0.1:{port}", token="lbk_x", offline_dir=tmp_path,
                       create_timeout=0.5, capture_env=False)
    run.log({"acc": 0.5}, step=0)
    run.finish()
    assert run.http is None
    _, points, _, finish = read_offline(run.offline_path)
    assert [p[:3] for p in points] == [("acc", 0, 0.5)] and finish["status"] == "succeeded"
