from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.defaults import server_error as default_server_error

from labbook.core import services
from labbook.core.health import health_report


def server_error(request: HttpRequest) -> HttpResponse:
    """500 handler: JSON under /api/, the usual page elsewhere."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": "Server error."}, status=500)
    return default_server_error(request)


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Public on purpose (load balancers, compose health checks); reveals no user data."""
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    new_token = request.session.pop("new_token", None)
    return render(request, "core/tokens.html", {"tokens": request.user.api_tokens.all(), "new_token": new_token})


@login_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    _, raw = services.token_create(user=request.user, name=request.POST.get("name", "").strip() or "token")
    # Shown once on the next page, never stored in clear.
    request.session["new_token"] = raw
    return redirect("tokens")


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    if services.token_revoke(user=request.user, token_id=token_id):
        messages.success(request, "Token revoked.")
    return redirect("tokens")


# --- login with rate limiting ---------------------------------------------------------------------------------------
import logging  # noqa: E402

from django.conf import settings  # noqa: E402
from django.contrib.auth import views as auth_views  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.core.cache.backends.locmem import LocMemCache  # noqa: E402
from redis.exceptions import RedisError  # noqa: E402

logger = logging.getLogger(__name__)

# Failed logins allowed per (client address, username) and per address within the window; then 429 until it expires.
LOGIN_MAX_FAILURES = int(getattr(settings, "LOGIN_MAX_FAILURES", 10))
LOGIN_WINDOW_S = 15 * 60
# While Redis (the shared cache) is down, failures are counted in this process instead: logging in keeps working
# and the limit still holds per web process (failing open would let an attacker who stops Redis guess freely).
_local_failures = LocMemCache("login-failures", {"TIMEOUT": LOGIN_WINDOW_S, "OPTIONS": {"MAX_ENTRIES": 100_000}})


def _failure_counts(keys: list[str]) -> dict[str, int]:
    try:
        return cache.get_many(keys)
    except RedisError:
        logger.warning("login rate limit: Redis unreachable, counting failures in this process")
        return _local_failures.get_many(keys)


def _count_failure(key: str) -> None:
    for store in (cache, _local_failures):
        try:
            try:
                store.incr(key)
            except ValueError:
                store.set(key, 1, LOGIN_WINDOW_S)
            return
        except RedisError:
            logger.warning("login rate limit: Redis unreachable, counting failures in this process")


def _client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "unknown")


class RateLimitedLoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def _keys(self, request: HttpRequest) -> list[str]:
        ip = _client_ip(request)
        username = (request.POST.get("username") or "").strip().lower()[:150]
        return [f"login-fail:ip:{ip}", f"login-fail:user:{ip}:{username}"]

    def post(self, request, *args, **kwargs):
        keys = self._keys(request)
        counts = _failure_counts(keys)
        ip_limit = LOGIN_MAX_FAILURES * 3  # several users behind one address get some slack
        if counts.get(keys[1], 0) >= LOGIN_MAX_FAILURES or counts.get(keys[0], 0) >= ip_limit:
            response = render(request, "registration/login.html",
                              {"form": self.get_form(), "rate_limited": True}, status=429)
            response["Retry-After"] = str(LOGIN_WINDOW_S)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        for key in self._keys(self.request):
            _count_failure(key)
        return super().form_invalid(form)
