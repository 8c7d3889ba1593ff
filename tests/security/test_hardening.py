"""Deployment hardening not covered elsewhere: secrets only from the environment (or *_FILE), never committed;
password validation; the login rate limit per address; CSRF on session-authenticated API writes; no open redirects;
security headers on pages. (check --deploy, SECRET_KEY required in production, token hashing and the per-user login
limit are in tests/core.)"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from tests.conftest import ROOT

pytestmark = pytest.mark.django_db


def _settings_in_subprocess(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "SECRET_KEY_FILE", "LABBOOK_ENV")}
    return subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT,
                          env={**base, "DJANGO_SETTINGS_MODULE": "labbook.settings", **env},
                          capture_output=True, text=True, timeout=120)


def test_secret_key_comes_from_a_secret_file_in_production(tmp_path):
    secret = "file-secret-" + "k" * 50
    (tmp_path / "secret").write_text(secret + "\n")
    out = _settings_in_subprocess("from django.conf import settings; print(settings.SECRET_KEY)",
                                  LABBOOK_ENV="production", SECRET_KEY_FILE=str(tmp_path / "secret"),
                                  ALLOWED_HOSTS="example.org", LABBOOK_DATA_DIR=str(tmp_path / "data"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == secret


def test_development_key_is_generated_into_the_data_directory_not_the_repository(tmp_path):
    out = _settings_in_subprocess("from django.conf import settings; print(settings.SECRET_KEY)",
                                  LABBOOK_DATA_DIR=str(tmp_path / "data"))
    assert out.returncode == 0, out.stderr[-2000:]
    key_file = tmp_path / "data" / ".secret_key"
    assert key_file.read_text().strip() == out.stdout.strip().splitlines()[-1]
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


SECRET_PATTERNS = [
    re.compile(r"""SECRET_KEY\s*=\s*["'][^"']{8,}["']"""),
    re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"),
    re.compile(r"\blbk_[A-Za-z0-9_\-]{20,}"),
    # A URL with a password in it, unless the password is a placeholder or comes from the environment (${VAR}).
    re.compile(r"(?:postgres(?:ql)?|redis)://[^:@/\s$]+:(?!pass@|PASS@|password@|\$\{)[^@/\s]{4,}@"),
    re.compile(r"(?i)\b(?:aws_secret_access_key|api_key|password)\s*=\s*[\"'][^\"'\s]{12,}[\"']"),
]


def test_no_secret_is_committed():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    hits = []
    for name in files:
        if name.startswith("tests/") or name.endswith((".lock", ".svg", ".png", ".jpg", ".json")):
            continue  # tests hold throwaway passwords by design
        path = ROOT / name
        try:
            text = path.read_text(errors="ignore")
        except (OSError, IsADirectoryError):
            continue
        hits += [f"{name}: {m.group(0)[:40]}" for p in SECRET_PATTERNS for m in p.finditer(text)]
    assert hits == []
    ignored = subprocess.run(["git", "check-ignore", "data/.secret_key", "data/labbook.sqlite3", ".env"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    assert {"data/.secret_key", "data/labbook.sqlite3"} <= set(ignored)


@pytest.mark.parametrize("password,why", [
    ("short1!", "too short"), ("password1234", "too common"), ("12345678901234", "entirely numeric"),
    ("physicist-alice1", "too similar"),
])
def test_password_validation_refuses_weak_passwords(django_user_model, password, why):
    user = django_user_model(username="physicist-alice")
    with pytest.raises(ValidationError) as err:
        validate_password(password, user=user)
    assert why in " ".join(err.value.messages)


def test_password_validation_accepts_a_passphrase(user):
    validate_password("correct horse battery staple", user=user)


def test_the_admin_password_change_applies_the_validators(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="a long enough passphrase 1")
    client.force_login(admin)
    response = client.post(f"/admin/auth/user/{admin.pk}/password/",
                           {"password1": "12345678901", "password2": "12345678901"})
    assert response.status_code == 200  # the form comes back with errors
    assert "entirely numeric" in response.content.decode()
    admin.refresh_from_db()
    assert admin.check_password("a long enough passphrase 1")


def test_login_is_rate_limited_per_address_across_usernames(client, user):
    from django.core.cache import cache

    from labbook.core.views import LOGIN_MAX_FAILURES

    cache.delete_many(["login-fail:ip:127.0.0.1"] + [f"login-fail:user:127.0.0.1:u{i}" for i in range(40)])
    codes = [client.post("/login/", {"username": f"u{i}", "password": "nope"}).status_code
             for i in range(LOGIN_MAX_FAILURES * 3 + 1)]
    assert codes[:-1] == [200] * (LOGIN_MAX_FAILURES * 3) and codes[-1] == 429
    blocked = client.post("/login/", {"username": "alice", "password": "correct horse battery staple"})
    assert blocked.status_code == 429 and blocked["Retry-After"]
    cache.delete("login-fail:ip:127.0.0.1")


def test_session_authenticated_api_writes_need_a_csrf_token(user):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    refused = browser.post("/api/projects/", {"name": "x"}, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    browser.get("/today/")
    token = browser.cookies["csrftoken"].value
    accepted = browser.post("/api/projects/", {"name": "x"}, content_type="application/json",
                            HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example/",
                                    "\\\\evil.example", "/%5Cevil.example", "javascript:alert(1)",
                                    " //evil.example", "http:evil.example", "/\t/evil.example"])
def test_no_open_redirects(auth_client, user, target):
    from experiments import services

    run = services.run_create(owner=user, project=services.project_get_or_create(owner=user, name="p"), name="r",
                              config={})
    after_add = auth_client.post(f"/runs/{run.pk}/add-to-today/", {"next": target})
    auth_client.logout()
    after_login = auth_client.post(f"/login/?next={target}", {"username": "alice",
                                                              "password": "correct horse battery staple"})
    for response in (after_add, after_login):
        assert response.status_code == 302
        location = response["Location"]
        parts = urlsplit(location)
        # A path on this site: no scheme, no host, and nothing a browser would read as one ("//x", "/\\x").
        assert not parts.scheme and not parts.netloc and location.startswith("/"), location
        assert not location.startswith(("//", "/\\")) and "\\" not in location and "\t" not in location


def test_pages_send_the_security_headers(client, user):
    login = client.post("/login/", {"username": "alice", "password": "correct horse battery staple"})
    assert login.cookies["sessionid"]["httponly"] and login.cookies["sessionid"]["samesite"] == "Lax"
    response = client.get("/today/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    csp = response["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'",
                      "base-uri 'self'", "form-action 'self'"):
        assert directive in csp
