"""URL map. Each app owns two modules: ``<app>/urls.py`` (pages) and ``<app>/api_urls.py`` (REST under /api/)."""
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.permissions import IsAuthenticated

_auth = {"permission_classes": [IsAuthenticated]}

urlpatterns = [
    path("", include("labbook.core.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(**_auth), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", **_auth), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", **_auth), name="api-redoc"),
    path("api/", include("notes.api_urls")),
    path("api/", include("experiments.api_urls")),
    path("api/", include("runner.api_urls")),
    path("api/", include("runner.cost_api_urls")),
    path("", include("notes.urls")),
    path("", include("experiments.urls")),
    path("", include("runner.urls")),
    path("", include("runner.cost_urls")),
]

# JSON (not an HTML page) for server errors under /api/ (unknown API URLs: labbook.core.middleware).
handler500 = "labbook.core.views.server_error"
