"""Cost estimator pages: the standalone estimate form and the device profiles."""
from django.urls import path

from runner import cost_views

urlpatterns = [
    path("cost/", cost_views.estimate_page, name="cost-estimate"),
    path("cost/profiles/", cost_views.profiles_page, name="cost-profiles"),
]
