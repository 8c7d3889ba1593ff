from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseBadRequest, JsonResponse
from django.urls import Resolver404, resolve


class LoginRequiredMiddleware:
    """Deny by default: every route needs a logged-in user unless its URL name is in settings.PUBLIC_URL_NAMES.

    API routes (``/api/``) are left to DRF, whose default permission is IsAuthenticated and which also accepts tokens;
    they answer 401/403 JSON rather than a login redirect. Static files are served by WhiteNoise before this runs.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.user.is_authenticated:
            return None
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return None
        if match.url_name in settings.PUBLIC_URL_NAMES:
            return None
        if request.path_info.startswith("/api/"):
            return None  # DRF authenticates (session or token) and enforces IsAuthenticated
        if request.path_info.startswith("/admin/"):
            return None  # the admin has its own login
        if request.headers.get("accept", "").startswith("application/json") or request.path_info.startswith("/stream/"):
            return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
        return redirect_to_login(request.get_full_path())


class SecurityHeadersMiddleware:
    """Content-Security-Policy on every response: no inline scripts, nothing from other origins."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path_info.startswith(("/api/docs", "/admin/")):
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        else:
            response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'; object-src 'none'")
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response


class RejectNulMiddleware:
    """A NUL character in the path or a query parameter is refused with 400 before any view sees it: PostgreSQL
    text cannot hold NUL, so it would otherwise surface as a 500 from whichever query used the value."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path_info or any("\x00" in k or "\x00" in v for k, values in request.GET.lists()
                                               for v in values):
            if request.path_info.startswith("/api/"):
                return JsonResponse({"detail": "Invalid input.", "errors": {
                    "non_field_errors": ["The URL contains a NUL character."]}}, status=400)
            return HttpResponseBadRequest("The URL contains a NUL character.")
        return self.get_response(request)


class ApiNotFoundJsonMiddleware:
    """An unknown URL under /api/ (e.g. /api/runs/abc/, which no route matches) answers JSON like every other API
    error, not Django's HTML page: API clients parse it, and the OpenAPI schema documents it (checked by fuzzing)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (response.status_code == 404 and request.path_info.startswith("/api/")
                and response.get("Content-Type", "").startswith("text/html")):
            return JsonResponse({"detail": "Not found."}, status=404)
        return response
