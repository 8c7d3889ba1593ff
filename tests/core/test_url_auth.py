"""Deny by default: walk the whole URL configuration and request every route anonymously.

Every route outside the explicit allow-list must refuse: a redirect to the login page for pages, 401/403 for the API,
live streams and downloads. A new route that forgets auth fails this test without anyone writing a test for it.
"""
from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

# Deliberately public: the login page, the health endpoint (no user data) and the admin's own login/logout flow.
PUBLIC = {"login", "healthz", "admin:login", "admin:logout", "admin:password_reset", "admin:password_reset_done",
          "admin:password_reset_confirm", "admin:password_reset_complete", "admin:index_redirect",
          "admin:view_on_site", "admin:jsi18n"}
SAMPLE_VALUES = {"int": "1", "slug": "x", "str": "x", "uuid": "00000000-0000-0000-0000-000000000000", "path": "x"}


def _walk(patterns, prefix="", namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), (namespace + p.name) if p.name else None


def _concrete(route: str) -> str | None:
    route = route.lstrip("^").rstrip("$").replace("\\Z", "")
    route = re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: SAMPLE_VALUES.get(m.group(1) or "str", "1"), route)
    if re.search(r"[()\[\]?*+\\]", route):  # a regex pattern (admin): fill named groups with a sample value
        route = re.sub(r"\(\?P<\w+>[^)]*\)", "1", route)
        route = route.replace("\\", "")
        if re.search(r"[()\[\]?*+]", route):
            return None
    return "/" + route


def all_routes():
    routes = []
    for route, name in _walk(get_resolver().url_patterns):
        url = _concrete(route)
        if url is not None:
            routes.append((url, name))
    return routes


def test_the_walk_sees_every_app():
    urls = [u for u, _ in all_routes()]
    assert "/healthz" in urls and "/api/schema/" in urls and "/account/tokens/" in urls
    assert len(urls) > 20


@pytest.mark.django_db
@pytest.mark.parametrize("url,name", all_routes())
def test_anonymous_requests_are_refused(client, url, name):
    if name in PUBLIC:
        return
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        if response.status_code in (404, 405):
            continue  # the sample object doesn't exist or the method isn't allowed: nothing served either way
        location = response.get("Location", "")
        refused = response.status_code in (401, 403) or (
            response.status_code == 302 and ("/login/" in location or "/admin/login/" in location))
        assert refused, f"{method.upper()} {url} ({name}) answered {response.status_code} to an anonymous user"
