"""REST routes under /api/ (see experiments.api)."""
from django.urls import path, re_path

from experiments import api

urlpatterns = [
    path("projects/", api.ProjectListApi.as_view(), name="api-projects"),
    path("projects/<int:pk>/", api.ProjectDetailApi.as_view(), name="api-project"),
    path("runs/", api.RunListApi.as_view(), name="api-runs"),
    path("runs/bulk/", api.RunsBulkApi.as_view(), name="api-runs-bulk"),
    path("runs/<int:pk>/", api.RunDetailApi.as_view(), name="api-run"),
    path("runs/<int:pk>/lineage/", api.RunLineageApi.as_view(), name="api-run-lineage"),
    path("runs/<int:pk>/metrics/", api.RunMetricsApi.as_view(), name="api-run-metrics"),
    path("runs/<int:pk>/series/", api.RunSeriesApi.as_view(), name="api-run-series"),
    # Metric keys may contain "/" (cost/macs): the key is everything up to the final /raw/.
    re_path(r"^runs/(?P<pk>\d+)/series/(?P<key>.+)/raw/$", api.RunSeriesRawApi.as_view(), name="api-run-series-raw"),
    path("runs/<int:pk>/artifacts/", api.RunArtifactsApi.as_view(), name="api-run-artifacts"),
    path("runs/<int:pk>/artifacts/<path:path>", api.RunArtifactFileApi.as_view(), name="api-run-artifact-file"),
]
