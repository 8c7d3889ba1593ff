"""Cost estimator API (estimate a spec without running a job, device profiles, a run's report)."""
from django.urls import path

from runner import cost_api

urlpatterns = [
    path("cost/estimate/", cost_api.CostEstimateApi.as_view(), name="api-cost-estimate"),
    path("cost/profiles/", cost_api.CostProfilesApi.as_view(), name="api-cost-profiles"),
    path("cost/runs/<int:run_id>/", cost_api.RunCostApi.as_view(), name="api-cost-run"),
]
