"""ASGI entry point (uvicorn). Static files are served by WhiteNoise inside Django, so one process serves all."""
from __future__ import annotations

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
os.environ.setdefault("DB_POOL", "1")  # pooled PostgreSQL connections in the web server (settings.DATABASES)
application = get_asgi_application()


def _warm_up() -> None:
    """Import the URLconf (and everything it pulls in, torch included) now rather than in the first request, then
    move every object alive after start-up out of the garbage collector's reach (gc.freeze): the server then pays
    for the objects its requests make, not a full traversal of the framework's and torch's few hundred thousand
    objects each time a large metrics batch triggers an oldest-generation collection (~20 ms stalls seen)."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - the import is the point
    gc.collect()
    gc.freeze()


_warm_up()
