from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from labbook.core import views

urlpatterns = [
    # The URL `./lab up` prints and where login lands (LOGIN_REDIRECT_URL): the researcher's day starts on Today.
    path("", RedirectView.as_view(pattern_name="today"), name="home"),
    path("login/", views.RateLimitedLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("account/tokens/", views.tokens, name="tokens"),
    path("account/tokens/new/", views.token_create, name="token-create"),
    path("account/tokens/<int:token_id>/revoke/", views.token_revoke, name="token-revoke"),
]
