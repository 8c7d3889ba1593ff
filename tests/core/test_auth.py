from __future__ import annotations

import pytest
from django.core.management import call_command

from labbook.core.models import ApiToken, hash_token

pytestmark = pytest.mark.django_db


def test_pages_redirect_anonymous_users_to_login(client):
    response = client.get("/account/tokens/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/account/tokens/")


def test_login_page_is_public_and_logs_in(client, user):
    assert client.get("/login/").status_code == 200
    response = client.post("/login/", {"username": "alice", "password": "correct horse battery staple"})
    assert response.status_code == 302
    assert client.get("/account/tokens/").status_code == 200


def test_login_lands_on_a_page_and_the_root_opens_today(client, user):
    response = client.post("/login/", {"username": "alice", "password": "correct horse battery staple"}, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/today/"
    assert client.get("/").url == "/today/"


def test_logout_ends_the_session(auth_client):
    auth_client.post("/logout/")
    assert auth_client.get("/account/tokens/").status_code == 302


def test_token_created_from_page_is_shown_once_and_stored_hashed(auth_client, user):
    auth_client.post("/account/tokens/new/", {"name": "gpu-box"})
    page = auth_client.get("/account/tokens/").content.decode()
    token = ApiToken.objects.get(user=user, name="gpu-box")
    raw = page.split('<pre id="new-token">')[1].split("</pre>")[0]
    assert raw.startswith("lbk_") and token.digest == hash_token(raw)
    assert raw not in ApiToken.objects.values_list("digest", flat=True)
    assert raw not in auth_client.get("/account/tokens/").content.decode()  # not shown again


def test_api_requires_auth_and_accepts_a_bearer_token(client, api_token):
    assert client.get("/api/schema/").status_code in (401, 403)
    ok = client.get("/api/schema/", HTTP_AUTHORIZATION=f"Bearer {api_token}")
    assert ok.status_code == 200
    bad = client.get("/api/schema/", HTTP_AUTHORIZATION="Bearer lbk_not-a-token")
    assert bad.status_code == 401


def test_revoked_token_stops_working(user, client):
    from labbook.core.services import token_create

    token, raw = token_create(user=user, name="old")
    assert client.get("/api/schema/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    client.force_login(user)
    client.post(f"/account/tokens/{token.pk}/revoke/")
    client.logout()
    assert client.get("/api/schema/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


def test_create_token_command_prints_a_working_token(user, client, capsys):
    call_command("create_token", "alice", "--name", "cli")
    raw = capsys.readouterr().out.strip()
    assert client.get("/api/schema/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200


def test_pages_send_a_content_security_policy(client):
    csp = client.get("/login/")["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]


def test_api_docs_page_needs_login_and_loads_assets_locally(client, user):
    assert client.get("/api/docs/").status_code in (302, 401, 403)
    client.force_login(user)
    html = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower()


def test_login_is_rate_limited_after_repeated_failures(client, user):
    from django.core.cache import cache

    keys = ["login-fail:ip:127.0.0.1", "login-fail:user:127.0.0.1:alice"]
    cache.delete_many(keys)
    for _ in range(10):
        assert client.post("/login/", {"username": "alice", "password": "wrong"}).status_code == 200
    blocked = client.post("/login/", {"username": "alice", "password": "correct horse battery staple"})
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.content.decode()
    cache.delete_many(keys)  # the window expired
    assert client.post("/login/", {"username": "alice", "password": "correct horse battery staple"}).status_code == 302


def test_weak_passwords_are_rejected():
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        validate_password("12345678")
