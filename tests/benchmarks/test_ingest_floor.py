"""The ingestion benchmark's floor (benchmarks/ingest.py): the binary COPY payload it times must store exactly the
points the other servers get, and the null ASGI app must read the whole body and answer like the metrics endpoint.
No timing is asserted here."""
from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from benchmarks.ingest import copy_payload, make_batches
from benchmarks.null_asgi import app


@pytest.mark.django_db
def test_copy_payload_stores_exactly_the_batch():
    if connection.vendor != "postgresql":
        pytest.skip("the storage floor is measured on PostgreSQL only")  # ./lab test always has PostgreSQL
    batch = make_batches(1000, 2, seed=7)[1]
    batch[3] = ("ключ/π", 2**62, -0.0, 1.5e-300)  # non-ASCII key, a 64-bit step, -0.0, a tiny float
    with connection.cursor() as cur:
        cur.execute("CREATE TEMPORARY TABLE floor_check (run_id bigint, key text, step bigint, value float8, "
                    "wall_time float8)")
        with cur.cursor.copy("COPY floor_check FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(copy_payload(batch))
        cur.execute("SELECT run_id, key, step, value, wall_time FROM floor_check")
        rows = cur.fetchall()
    assert {r[0] for r in rows} == {1}
    assert sorted(r[1:] for r in rows) == sorted(batch)
    stored = {(r[1], r[2]): r[3] for r in rows}
    assert math.copysign(1, stored[("ключ/π", 2**62)]) == -1  # -0.0 kept its sign


def test_null_app_reads_every_chunk_and_answers_201():
    chunks = [{"type": "http.request", "body": b'{"series": [', "more_body": True},
              {"type": "http.request", "body": b"]}", "more_body": False}]
    sent = []

    async def receive():
        return chunks.pop(0)

    async def send(message):
        sent.append(message)

    # In a thread of its own: other tests (browser ones) leave an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, app({"type": "http", "method": "POST", "path": "/"}, receive, send)).result()
    assert chunks == []  # the whole body was read before answering
    assert sent[0]["status"] == 201 and sent[1]["body"].startswith(b'{"received"')
