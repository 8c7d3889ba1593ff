"""Pages (see experiments.views); the REST API is in experiments.api_urls."""
from django.urls import path

from experiments import views

urlpatterns = [
    path("runs/", views.runs_list, name="runs"),
    path("runs/export.csv", views.runs_export_csv, name="runs-export-csv"),
    path("runs/compare/", views.runs_compare, name="runs-compare"),
    path("runs/<int:pk>/", views.run_detail, name="run-detail"),
    path("runs/<int:pk>/series.csv", views.run_series_csv, name="run-series-csv"),
]
