"""Data-parallel jobs: N processes (gloo on CPU, nccl on CUDA) started with torch.multiprocessing spawn.

The reporter stays in the parent (it may hold a database connection or a socket): rank 0 sends its events through
a multiprocessing queue and the parent replays them; cancellation goes the other way through an Event.
"""
from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from runner.engine.reporter import NullReporter, Reporter


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QueueReporter:
    """Rank 0's reporter in a worker process: forwards every event to the parent."""

    def __init__(self, queue: Any, stop: Any):
        self.queue, self.stop = queue, stop

    def on_metrics(self, step, metrics, *, epoch=None):
        self.queue.put(("on_metrics", (step, dict(metrics)), {"epoch": epoch}))

    def on_progress(self, *, step, total, epoch=None, message=""):
        self.queue.put(("on_progress", (), {"step": step, "total": total, "epoch": epoch, "message": message}))

    def on_log(self, line):
        self.queue.put(("on_log", (line,), {}))

    def on_artifact(self, path, *, kind, meta=None):
        self.queue.put(("on_artifact", (path,), {"kind": kind, "meta": meta}))

    def on_cost(self, report, *, step=None, label=""):
        self.queue.put(("on_cost", (report,), {"step": step, "label": label}))

    def should_stop(self):
        return self.stop.is_set()


class _StopOnly(NullReporter):
    def __init__(self, stop: Any):
        self.stop = stop

    def should_stop(self):
        return self.stop.is_set()


def _worker(rank: int, world: int, port: int, backend: str, queue: Any, stop: Any, fn: Callable, args: tuple) -> None:
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        reporter = QueueReporter(queue, stop) if rank == 0 else _StopOnly(stop)
        result = fn(*args, reporter=reporter, rank=rank, world=world)
        if rank == 0:
            queue.put(("result", (result,), {}))
    finally:
        dist.destroy_process_group()


def launch(fn: Callable[..., dict], args: tuple, *, world: int, use_cuda: bool, reporter: Reporter) -> dict:
    """Run ``fn(*args, reporter=..., rank=..., world=...)`` in ``world`` processes; returns rank 0's result."""
    if use_cuda and torch.cuda.device_count() < world:
        raise RuntimeError(f"{world} processes need {world} GPUs; this worker has {torch.cuda.device_count()}")
    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    backend = "nccl" if use_cuda else "gloo"
    procs = mp.start_processes(_worker, args=(world, free_port(), backend, queue, stop, fn, args), nprocs=world,
                               join=False, start_method="spawn")
    result: dict | None = None

    def drain(block: bool) -> None:
        nonlocal result
        while True:
            try:
                name, a, kw = queue.get(timeout=0.05) if block else queue.get_nowait()
            except Exception:  # queue.Empty (its class differs between queue implementations)
                return
            block = False
            if name == "result":
                result = a[0]
            else:
                getattr(reporter, name)(*a, **kw)

    while not procs.join(timeout=0.05):
        drain(block=False)
        if reporter.should_stop():
            stop.set()
    drain(block=True)
    if result is None:
        raise RuntimeError("data-parallel job ended without a result from rank 0")
    return result
