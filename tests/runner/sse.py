"""A small Server-Sent Events client over requests, for tests that talk to the real ASGI server."""
from __future__ import annotations

import json
import time

import requests


def session_cookie(user) -> dict[str, str]:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return {settings.SESSION_COOKIE_NAME: session.session_key}


class SSEClient:
    def __init__(self, url: str, cookies: dict, last_event_id: str | None = None, timeout: float = 10):
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.response = requests.get(url, cookies=cookies, headers=headers, stream=True, timeout=timeout)
        self.status_code = self.response.status_code
        # chunk_size=1: a bigger chunk would wait for that many bytes and add latency that is the client's, not ours.
        self._lines = self.response.iter_lines(chunk_size=1, decode_unicode=True) if self.status_code == 200 else iter(())

    def events(self, count: int, timeout: float = 15, types: set[str] | None = None, until=None) -> list[dict]:
        """Read ``count`` events (of ``types``), or up to the one ``until(event)`` accepts; each as
        {id, event, data, received}; comments are skipped."""
        out: list[dict] = []
        current: dict = {}
        deadline = time.monotonic() + timeout
        for line in self._lines:
            if time.monotonic() > deadline:
                break
            if line is None:
                continue
            if line == "":
                if "data" in current:
                    current["received"] = time.time()
                    current["data"] = json.loads(current["data"])
                    if types is None or current.get("event") in types:
                        out.append(current)
                    if len(out) >= count or (until is not None and until(current)):
                        break
                current = {}
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            current[field] = value[1:] if value.startswith(" ") else value
        return out

    def close(self) -> None:
        self.response.close()
