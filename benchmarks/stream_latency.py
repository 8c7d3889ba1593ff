"""Streaming latency: from ``run.log()`` in the Python client to the event in a connected viewer of the run page's
Server-Sent Events stream (``/stream/runs/<id>/``, what the browser's EventSource reads), p50/p95. Goal p95 < 500 ms.

The viewer here is a small SSE reader over ``requests`` with a logged-in session cookie, in this process; latency is
(time the event's line arrived) - (the point's wall_time, which the client stamps at the log call), one clock. The
baseline, measured on the same points at the same time, is a viewer that polls the raw series API once a second for
steps after the last one it has. Two client settings are measured: the client's default ``flush_interval`` (0.2 s: the
background thread sends at most five times a second unless 1,000 points are waiting) and ``flush_interval=1``.
"""
from __future__ import annotations

import json
import threading
import time

from benchmarks.common import Context, Section, at_most, percentile
from labbook.client import DEFAULT_FLUSH_INTERVAL_S

NAME = "stream_latency"
TITLE = "Streaming latency: client log call -> SSE event in a connected viewer vs polling"
NEEDS_STACK = True
GOAL_MS = 500.0
POLL_S = 1.0
RATE_HZ = 20.0


class SSEReader(threading.Thread):
    """Reads ``metrics`` events and records (key, step) -> arrival time and the point's wall_time."""

    def __init__(self, url: str, cookies: dict[str, str]):
        super().__init__(daemon=True)
        import requests

        self.response = requests.get(url, cookies=cookies, headers={"Accept": "text/event-stream"}, stream=True,
                                     timeout=30)
        self.response.raise_for_status()
        self.arrivals: dict[tuple[str, int], float] = {}
        self.latencies: list[float] = []

    def run(self) -> None:
        event, data = "", ""
        try:
            # chunk_size=1: a larger chunk waits for that many bytes (latency that is the reader's, not the server's)
            for line in self.response.iter_lines(chunk_size=1, decode_unicode=True):
                if line is None:
                    continue
                if line == "":
                    if event == "metrics" and data:
                        now = time.time()
                        for p in json.loads(data).get("points", []):
                            if (p["key"], p["step"]) not in self.arrivals:
                                self.arrivals[(p["key"], p["step"])] = now
                                self.latencies.append(now - p["wall_time"])
                    event, data = "", ""
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
        except Exception:  # noqa: BLE001 - the stream is closed under us at the end
            return

    def close(self) -> None:
        self.response.close()


class Poller(threading.Thread):
    """Polls ``/series/<key>/raw/?after_step=`` every POLL_S seconds, as a page without a stream would."""

    def __init__(self, session, url: str, wall_times: dict[int, float]):
        super().__init__(daemon=True)
        self.session, self.url, self.wall_times = session, url, wall_times
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        after = -1
        while not self.stop.is_set():
            page = self.session.get(self.url, params={"after_step": after, "limit": 10_000}, timeout=30).json()
            now = time.time()
            for step, _value, wall in page["points"]:
                self.latencies.append(now - wall)
                after = max(after, step)
            self.stop.wait(POLL_S)


def measure(ctx: Context, flush_interval: float, points: int) -> dict:
    import labbook

    stack = ctx.stack
    base = stack.server.url
    run = labbook.init(project="bench-stream", name=f"stream-flush-{flush_interval:g}", url=base, token=stack.token,
                       flush_interval=flush_interval, capture_env=False, offline_dir=str(ctx.scratch / "client"))
    reader = SSEReader(f"{base}/stream/runs/{run.id}/?last_id=0-0", stack.session_cookie())
    reader.start()
    poller = Poller(stack.http(), f"{base}/api/runs/{run.id}/series/loss/raw/", {})
    poller.start()
    time.sleep(0.5)  # both viewers connected before the first point
    from benchmarks.common import progress

    for step in progress(range(points), desc=f"logging at {RATE_HZ:g} Hz (flush {flush_interval:g} s)", unit="pt"):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
        time.sleep(1.0 / RATE_HZ)
    run.finish()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (len(reader.latencies) < points or len(poller.latencies) < points):
        time.sleep(0.1)
    poller.stop.set()
    reader.close()
    return {"flush_interval": flush_interval, "points": points, "sse_received": len(reader.latencies),
            "poll_received": len(poller.latencies), "sse": reader.latencies, "poll": poller.latencies}


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE)
    points = 100 if ctx.quick else 400
    results = [measure(ctx, DEFAULT_FLUSH_INTERVAL_S, points), measure(ctx, 1.0, points)]
    for r in results:
        if not r["sse"]:
            section.notes.append(f"flush_interval={r['flush_interval']:g}: no event reached the SSE viewer")
            continue
        sse50, sse95 = percentile(r["sse"], 50) * 1000, percentile(r["sse"], 95) * 1000
        poll50 = percentile(r["poll"], 50) * 1000 if r["poll"] else None
        poll95 = percentile(r["poll"], 95) * 1000 if r["poll"] else None
        label = (f"client default flush_interval={r['flush_interval']:g} s"
                 if r["flush_interval"] == DEFAULT_FLUSH_INTERVAL_S else f"flush_interval={r['flush_interval']:g} s")
        section.add(f"p50, {label}", sse50, "ms", poll50, f"polling the series API every {POLL_S:g} s")
        default = r["flush_interval"] == DEFAULT_FLUSH_INTERVAL_S
        section.add(f"p95, {label}", sse95, "ms", poll95, f"polling the series API every {POLL_S:g} s",
                    goal=f"< {GOAL_MS:g} ms" if default else "", passed=at_most(sse95, GOAL_MS) if default else None,
                    note=f"{r['sse_received']}/{r['points']} points reached the SSE viewer, {r['poll_received']} "
                         f"the poller")
    section.details = {"rate_hz": RATE_HZ, "poll_s": POLL_S,
                       "runs": [{k: v for k, v in r.items() if k not in ("sse", "poll")} | {
                           "sse_ms": sorted(x * 1000 for x in r["sse"])[::10]} for r in results]}
    section.notes.append(f"One metric logged at {RATE_HZ:g} Hz; the viewer is a Python SSE reader on the run page's "
                         "stream with a session cookie (what the page's EventSource does), the baseline a poller of "
                         "the raw series API, both on the same points in the same run.")
    return section
