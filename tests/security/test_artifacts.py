"""Artifacts: no path, encoding or planted symlink reaches a file outside the artifact root, on upload or download;
bad paths answer 400/404 (never 500); downloads are attachments of a neutral type; uploads have a size limit."""
from __future__ import annotations

import http.client
import os
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from experiments import services, storage
from experiments.models import Artifact

pytestmark = pytest.mark.django_db

SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT"

# As a client would send them in a URL path (the server decodes once) and as a form field value.
TRAVERSAL_PATHS = [
    "../escape.txt", "../../escape.txt", "a/../../escape.txt", "./x", "a/./b", "..", ".",
    "%2e%2e/escape.txt", "%2E%2E%2Fescape.txt", "a%2f..%2f..%2fescape.txt", "%252e%252e%252fescape.txt",
    "%25252e%25252e/escape.txt", "..%5cescape.txt", "..\\escape.txt", "a\\..\\..\\escape.txt",
    "/etc/passwd", "//etc/passwd", "C:/Windows/win.ini", "c:\\x", "x\x00.txt", "x%00.txt", "a/\x00/b",
    "x\r\nSet-Cookie: a=b", " ", "", "a" * 600,
]
# In a URL: the empty path is the listing route, and the client drops CR/LF/tab from a URL (WHATWG) before sending.
URL_PATHS = [p for p in TRAVERSAL_PATHS if p and not any(c in p for c in "\r\n\t")]


@pytest.fixture
def root(settings, tmp_path) -> Path:
    root = tmp_path / "artifacts"
    root.mkdir()
    settings.ARTIFACT_ROOT = root
    return root


@pytest.fixture
def outside(tmp_path) -> Path:
    """A directory next to the artifact root with a secret in it: nothing may read or write here."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.txt").write_bytes(SECRET)
    (tmp_path / "escape.txt").write_bytes(SECRET)
    return d


@pytest.fixture
def run(user):
    project = services.project_get_or_create(owner=user, name="art")
    return services.run_create(owner=user, project=project, name="r", config={})


def files_outside(tmp_path: Path, root: Path) -> set[Path]:
    return {p for p in tmp_path.rglob("*") if p.is_file() and root not in p.parents}


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


# --- upload ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", TRAVERSAL_PATHS)
def test_multipart_upload_with_a_bad_path_is_400_and_writes_nothing(api_client, run, root, outside, tmp_path, bad):
    before = files_outside(tmp_path, root)
    response = api_client.post(f"/api/runs/{run.pk}/artifacts/",
                               {"file": SimpleUploadedFile("x.txt", b"payload"), "path": bad}, format="multipart")
    if bad == "":  # an empty path field means "use the file's name": allowed, stored as x.txt
        assert response.status_code == 201 and response.json()["path"] == "x.txt"
        return
    assert response.status_code == 400, (bad, response.status_code, response.content[:300])
    assert "path" in response.json()["errors"]
    assert files_outside(tmp_path, root) == before
    assert not Artifact.objects.filter(run=run).exists()
    assert not [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("bad", URL_PATHS)
def test_raw_put_with_a_bad_path_in_the_url_is_refused_and_writes_nothing(api_client, run, root, outside, tmp_path,
                                                                          bad):
    before = files_outside(tmp_path, root)
    response = api_client.generic("PUT", f"/api/runs/{run.pk}/artifacts/{bad}", b"payload",
                                  content_type="application/octet-stream")
    assert response.status_code in (400, 404, 405), (bad, response.status_code, response.content[:300])
    assert files_outside(tmp_path, root) == before
    assert not Artifact.objects.filter(run=run).exists()


@pytest.mark.parametrize("bad", ["x.txt", "../x.txt", "%2e%2e/x.txt", "..\\x.txt"])
def test_the_uploaded_file_name_cannot_traverse_either(api_client, run, root, outside, tmp_path, bad):
    """No 'path' field: the multipart file name is used, reduced to its last component."""
    before = files_outside(tmp_path, root)
    response = api_client.post(f"/api/runs/{run.pk}/artifacts/", {"file": SimpleUploadedFile(bad, b"payload")},
                               format="multipart")
    assert response.status_code in (201, 400), response.content
    assert files_outside(tmp_path, root) == before


def test_upload_through_a_symlinked_directory_inside_the_run_is_refused(api_client, run, root, outside, tmp_path):
    storage.run_dir(run.pk).mkdir(parents=True)
    (storage.run_dir(run.pk) / "link").symlink_to(outside)
    for send in (
        lambda: api_client.post(f"/api/runs/{run.pk}/artifacts/",
                                {"file": SimpleUploadedFile("x.txt", b"payload"), "path": "link/secret.txt"},
                                format="multipart"),
        lambda: api_client.put(f"/api/runs/{run.pk}/artifacts/link/secret.txt", b"payload",
                               content_type="application/octet-stream"),
        lambda: api_client.put(f"/api/runs/{run.pk}/artifacts/link/new.txt", b"payload",
                               content_type="application/octet-stream"),
    ):
        assert send().status_code == 400
    assert (outside / "secret.txt").read_bytes() == SECRET and not (outside / "new.txt").exists()


def test_upload_onto_a_planted_file_symlink_does_not_write_through_it(api_client, run, root, outside):
    storage.run_dir(run.pk).mkdir(parents=True)
    (storage.run_dir(run.pk) / "model.pt").symlink_to(outside / "secret.txt")
    response = api_client.put(f"/api/runs/{run.pk}/artifacts/model.pt", b"overwritten",
                              content_type="application/octet-stream")
    assert response.status_code == 400
    assert (outside / "secret.txt").read_bytes() == SECRET


def test_a_run_directory_that_is_itself_a_symlink_to_outside_is_refused(api_client, run, root, outside):
    """A link planted at ARTIFACT_ROOT/<run id> (e.g. by a job or an admin mistake) must not become a way out."""
    os.symlink(outside, storage.run_dir(run.pk))
    put = api_client.put(f"/api/runs/{run.pk}/artifacts/new.txt", b"payload", content_type="application/octet-stream")
    assert put.status_code == 400
    assert not (outside / "new.txt").exists()
    Artifact.objects.create(run=run, path="secret.txt", size=len(SECRET))
    get = api_client.get(f"/api/runs/{run.pk}/artifacts/secret.txt")
    assert get.status_code == 404 and SECRET not in body_of(get)


def test_upload_over_the_size_limit_is_413_with_a_clear_message_and_leaves_nothing(api_client, run, root, settings):
    settings.ARTIFACT_MAX_BYTES = 1024
    multipart = api_client.post(f"/api/runs/{run.pk}/artifacts/",
                                {"file": SimpleUploadedFile("big.bin", b"x" * 4096)}, format="multipart")
    put = api_client.put(f"/api/runs/{run.pk}/artifacts/big.bin", b"x" * 4096,
                         content_type="application/octet-stream")
    for response in (multipart, put):
        assert response.status_code == 413
        assert "1024" in response.json()["detail"] and "ARTIFACT_MAX_BYTES" in response.json()["detail"]
    assert not Artifact.objects.filter(run=run).exists()
    assert not [p for p in root.rglob("*") if p.is_file()]
    exactly = api_client.put(f"/api/runs/{run.pk}/artifacts/ok.bin", b"x" * 1024,
                             content_type="application/octet-stream")
    assert exactly.status_code == 201


# --- download --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", URL_PATHS)
def test_download_with_a_bad_path_is_404_and_serves_nothing_outside(api_client, run, root, outside, bad):
    services.artifact_store(run=run, path="ok.txt", chunks=[b"fine"])
    response = api_client.get(f"/api/runs/{run.pk}/artifacts/{bad}")
    assert response.status_code in (400, 404), (bad, response.status_code)
    assert SECRET not in body_of(response)


def test_download_of_an_artifact_replaced_by_a_symlink_to_outside_is_404(api_client, run, root, outside):
    services.artifact_store(run=run, path="model.pt", chunks=[b"weights"])
    target = storage.run_dir(run.pk) / "model.pt"
    target.unlink()
    target.symlink_to(outside / "secret.txt")
    response = api_client.get(f"/api/runs/{run.pk}/artifacts/model.pt")
    assert response.status_code == 404 and SECRET not in body_of(response)
    # A parent directory replaced by a link is refused the same way.
    services.artifact_store(run=run, path="d/ckpt.pt", chunks=[b"weights"])
    (storage.run_dir(run.pk) / "d" / "ckpt.pt").unlink()
    (storage.run_dir(run.pk) / "d").rmdir()
    (storage.run_dir(run.pk) / "d").symlink_to(outside)
    (outside / "ckpt.pt").write_bytes(SECRET)
    response = api_client.get(f"/api/runs/{run.pk}/artifacts/d/ckpt.pt")
    assert response.status_code == 404 and SECRET not in body_of(response)


def test_a_job_cannot_register_a_symlink_to_outside_as_an_artifact(run, root, outside):
    storage.run_dir(run.pk).mkdir(parents=True)
    (storage.run_dir(run.pk) / "out.pt").symlink_to(outside / "secret.txt")
    with pytest.raises(storage.UnsafePath):
        services.artifact_register(run=run, path="out.pt")
    assert not Artifact.objects.filter(run=run).exists()


@pytest.mark.parametrize("name,content", [
    ("page.html", b"<html><script>alert(1)</script></html>"),
    ("image.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
    ("x.js", b"alert(1)"), ("x.xml", b"<?xml version='1.0'?><x/>"), ("noext", b"<script>alert(1)</script>"),
    ('we"ird; name=evil.html', b"<b>x</b>"),
])
def test_downloads_are_attachments_of_a_neutral_type_that_never_render(api_client, run, root, name, content):
    url = f"/api/runs/{run.pk}/artifacts/dl/{quote(name)}"
    assert api_client.put(url, content, content_type="text/html").status_code == 201
    dl = api_client.get(url)
    assert dl.status_code == 200
    assert dl["Content-Type"] == "application/octet-stream"
    assert dl["Content-Disposition"].startswith("attachment;")
    assert 'filename="evil.html"' not in dl["Content-Disposition"]
    assert dl["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in dl["Content-Security-Policy"]
    assert body_of(dl) == content


# --- through a real server: raw request lines, no client-side normalisation ------------------------------------------

@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_raw_traversal_requests_to_a_real_server_never_escape(tmp_path, user, api_token):
    from tests.conftest import start_asgi_server

    root = tmp_path / "artifacts"
    root.mkdir()
    (tmp_path / "escape.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(SECRET)
    project = services.project_get_or_create(owner=user, name="raw")
    run = services.run_create(owner=user, project=project, name="r", config={})
    server = start_asgi_server(tmp_path, LABBOOK_ARTIFACT_ROOT=str(root))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        auth = {"Authorization": f"Bearer {api_token}"}
        raw_paths = ["../escape.txt", "..%2fescape.txt", "%2e%2e/escape.txt", "%2e%2e%2fescape.txt",
                     "%252e%252e%252fescape.txt", "..%5cescape.txt", "..\\escape.txt", "%2fetc%2fpasswd",
                     "x%00.txt", "../../outside/secret.txt", "a/../../../escape.txt"]
        for raw in raw_paths:
            for method in ("GET", "PUT"):
                conn.request(method, f"/api/runs/{run.pk}/artifacts/{raw}", body=b"payload" if method == "PUT" else None,
                             headers={**auth, "Content-Type": "application/octet-stream"})
                response = conn.getresponse()
                data = response.read()
                assert response.status in (400, 404), (method, raw, response.status, data[:200])
                assert SECRET not in data
        assert (tmp_path / "escape.txt").read_bytes() == SECRET
        assert (tmp_path / "outside" / "secret.txt").read_bytes() == SECRET
        assert not [p for p in root.rglob("*") if p.is_file()]
        assert "Traceback" not in server.log()
    finally:
        server.stop()
