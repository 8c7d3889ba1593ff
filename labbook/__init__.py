"""Labbook: a self-hosted lab notebook and experiment engine.

Importing ``labbook`` is cheap and needs nothing but the standard library: a training script on a machine with only
``requests`` installed can ``import labbook; labbook.init(...)``. The Celery app and the client are loaded lazily
on first attribute access. Django processes load the Celery app at startup (labbook.core.apps), so that
``shared_task`` binds to it; ``celery -A labbook worker`` finds ``labbook.celery:app`` by itself.
"""
from __future__ import annotations

from typing import Any

__all__ = ["celery_app", "init", "upload", "Run"]

_CLIENT_NAMES = {"init", "upload", "Run", "LabbookError"}


def __getattr__(name: str) -> Any:
    if name == "celery_app":
        from labbook.celery import app

        return app
    if name in _CLIENT_NAMES:
        from labbook import client

        return getattr(client, name)
    raise AttributeError(f"module 'labbook' has no attribute {name!r}")
