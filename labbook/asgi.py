"""ASGI entry point (uvicorn). Static files are served by WhiteNoise inside Django, so one process serves all."""
from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
application = get_asgi_application()
