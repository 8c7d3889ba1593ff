"""Input limits: oversized or pathological input answers 400 or 413 with a message that says what the limit is, and
never a 500. Batch size, key length, series page length, upload size, run filter length and depth, search query
length, job spec size, and deeply nested JSON on every JSON endpoint."""
from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from experiments import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(user, settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    project = services.project_get_or_create(owner=user, name="limits")
    return services.run_create(owner=user, project=project, name="r", config={})


def message_of(response) -> str:
    data = response.json()
    return json.dumps(data)


def assert_refused(response, statuses=(400, 413), *, mentions: str | None = None):
    assert response.status_code in statuses, (response.status_code, response.content[:400])
    if mentions is not None:
        assert mentions in message_of(response), message_of(response)


# --- metrics ---------------------------------------------------------------------------------------------------------

def test_a_metric_batch_over_10000_points_is_413_naming_the_limit(api_client, run):
    points = [{"key": "loss", "step": i, "value": 1.0} for i in range(10_001)]
    response = api_client.post(f"/api/runs/{run.pk}/metrics/", {"points": points}, format="json")
    assert_refused(response, (413,), mentions="10000")
    columns = {"series": [{"key": "loss", "steps": list(range(10_001)), "values": [1.0] * 10_001}]}
    assert_refused(api_client.post(f"/api/runs/{run.pk}/metrics/", columns, format="json"), (413,),
                   mentions="10000")
    exactly = [{"key": "loss", "step": i, "value": 1.0} for i in range(10_000)]
    assert api_client.post(f"/api/runs/{run.pk}/metrics/", {"points": exactly}, format="json").status_code == 201


def test_a_metric_body_past_the_upload_limit_is_413(api_client, run, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"points": [{"key": "k" * 100, "step": i, "value": 1} for i in range(50)]})
    response = api_client.generic("POST", f"/api/runs/{run.pk}/metrics/", body, content_type="application/json")
    assert_refused(response, (413,), mentions="1000")


@pytest.mark.parametrize("key,why", [
    ("k" * 201, "characters"), ("", None), ("a\x00b", None), ("a\nb", None), (123, None), (None, None),
])
def test_a_bad_metric_key_is_400_naming_the_point(api_client, run, key, why):
    response = api_client.post(f"/api/runs/{run.pk}/metrics/", {"points": [{"key": key, "step": 0, "value": 1}]},
                               format="json")
    assert_refused(response, (400,), mentions=why)
    assert "points" in message_of(response)


@pytest.mark.parametrize("params,field", [
    ({"limit": "10001"}, "limit"), ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"),
    ({"limit": "9" * 40}, "limit"), ({"after_step": "-5"}, "after_step"), ({"after_step": "1e999"}, "after_step"),
    ({"after_step": "9" * 40}, "after_step"),
], ids=["limit-big", "limit-0", "limit-text", "limit-huge", "after-neg", "after-inf", "after-huge"])
def test_raw_series_page_parameters_out_of_range_are_400(api_client, run, params, field):
    response = api_client.get(f"/api/runs/{run.pk}/series/loss/raw/", params)
    assert_refused(response, (400,), mentions=field)


@pytest.mark.parametrize("params,field", [
    ({"max_points": "20001"}, "max_points"), ({"max_points": "1"}, "max_points"), ({"max_points": "9" * 40}, "max_points"),
    ({"keys": "k" * 201}, "keys"), ({"keys": ",".join(f"k{i}" for i in range(201))}, "keys"), ({"x": "y"}, "x"),
], ids=["max-big", "max-small", "max-huge", "key-long", "keys-many", "x"])
def test_downsampled_series_parameters_out_of_range_are_400(api_client, run, params, field):
    response = api_client.get(f"/api/runs/{run.pk}/series/", params)
    assert_refused(response, (400,), mentions=field)


def test_a_raw_series_key_past_the_limit_is_400(api_client, run):
    assert_refused(api_client.get(f"/api/runs/{run.pk}/series/{'k' * 300}/raw/"), (400,), mentions="key")


# --- uploads ---------------------------------------------------------------------------------------------------------

def test_an_artifact_past_the_size_limit_is_413(api_client, run, settings):
    settings.ARTIFACT_MAX_BYTES = 100
    response = api_client.post(f"/api/runs/{run.pk}/artifacts/", {"file": SimpleUploadedFile("a.bin", b"x" * 101)},
                               format="multipart")
    assert_refused(response, (413,), mentions="ARTIFACT_MAX_BYTES")


def test_a_notes_import_past_the_size_limit_is_413(api_client, monkeypatch):
    from notes import api as notes_api

    monkeypatch.setattr(notes_api, "MAX_IMPORT_BYTES", 1024)
    response = api_client.post("/api/import/markdown/", {"text": "x" * 2000}, format="json")
    assert_refused(response, (413,))


def test_a_note_body_past_the_limit_is_400(api_client):
    from notes.services import MAX_BODY_CHARS

    response = api_client.put("/api/logs/by-date/2024-01-01/", {"body": "x" * (MAX_BODY_CHARS + 1)}, format="json")
    assert_refused(response, (400, 413), mentions="body")


# --- queries ---------------------------------------------------------------------------------------------------------

def test_a_run_filter_past_the_length_limit_is_400_naming_q(api_client, auth_client):
    from experiments.query import MAX_QUERY_CHARS

    q = " or ".join(f'name = "r{i}"' for i in range(MAX_QUERY_CHARS // 10))
    assert len(q) > MAX_QUERY_CHARS
    response = api_client.get("/api/runs/", {"q": q})
    assert_refused(response, (400,), mentions=str(MAX_QUERY_CHARS))
    assert "q" in response.json()["errors"]
    for url in ("/runs/", "/runs/export.csv"):
        page = auth_client.get(url, {"q": q})
        assert page.status_code in (200, 400) and str(MAX_QUERY_CHARS) in b"".join(
            page.streaming_content if page.streaming else [page.content]).decode()


PATHOLOGICAL_FILTERS = {
    "parens": "(" * 900 + 'name = "x"' + ")" * 900, "nots": "not " * 450 + 'name = "x"', "quotes": '"' * 1000,
    "long-path": "params." + "a." * 800 + "b = 1", "long-word": "x" * 1990 + " = 1",
    "dangling-and": 'name = "x"' + " and" * 400, "many-terms": " or ".join(["params.a = 1"] * 120),
    "nul": 'name = "\x00"',
}


@pytest.mark.parametrize("q", list(PATHOLOGICAL_FILTERS.values()), ids=list(PATHOLOGICAL_FILTERS))
def test_pathological_run_filters_within_the_length_limit_are_answered_never_500(api_client, auth_client, q):
    from experiments.query import MAX_QUERY_CHARS

    assert len(q) <= MAX_QUERY_CHARS
    assert api_client.get("/api/runs/", {"q": q}).status_code in (200, 400)
    assert auth_client.get("/runs/", {"q": q}).status_code in (200, 400)
    assert auth_client.get("/runs/export.csv", {"q": q}).status_code in (200, 400)


def test_a_search_query_past_the_length_limit_is_400_naming_q(api_client, auth_client):
    from notes.selectors import MAX_SEARCH_CHARS

    q = "word " * (MAX_SEARCH_CHARS // 5 + 1)
    response = api_client.get("/api/search/", {"q": q})
    assert_refused(response, (400,), mentions=str(MAX_SEARCH_CHARS))
    page = auth_client.get("/search/", {"q": q})
    assert page.status_code == 400 and str(MAX_SEARCH_CHARS) in page.content.decode()


def test_a_search_with_many_short_terms_is_answered_or_refused_never_500(api_client):
    response = api_client.get("/api/search/", {"q": " ".join(f"t{i}" for i in range(150))})
    assert response.status_code in (200, 400)


# --- job specs -------------------------------------------------------------------------------------------------------

def test_a_job_spec_past_64_kib_is_413(api_client):
    spec = {"kind": "train", "model": "mlp", "dataset": "digits", "notes": "x" * (65 * 1024)}
    assert_refused(api_client.post("/api/jobs/", spec, format="json"), (413,), mentions="64 KiB")


# --- nested JSON: every JSON endpoint --------------------------------------------------------------------------------

def _deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize("method,url", [
    ("post", "/api/runs/{run}/metrics/"), ("post", "/api/runs/"), ("patch", "/api/runs/{run}/"),
    ("post", "/api/jobs/"), ("post", "/api/logs/"), ("post", "/api/notes/render/"), ("post", "/api/papers/"),
    ("post", "/api/cost/estimate/"), ("post", "/api/runs/bulk/"), ("post", "/api/projects/"),
])
def test_deeply_nested_json_is_400_not_500(api_client, run, method, url):
    body = '{"points": ' + _deep(100_000) + "}"
    response = api_client.generic(method.upper(), url.format(run=run.pk), body, content_type="application/json")
    assert_refused(response, (400, 413))


@pytest.mark.parametrize("body", ["{", "nul", '{"points": [1e999999]}', '{"points": NaN}', "\udcff", "[]", "1"])
def test_malformed_json_is_400_not_500(api_client, run, body):
    response = api_client.generic("POST", f"/api/runs/{run.pk}/metrics/", body.encode("utf-8", "surrogatepass"),
                                  content_type="application/json")
    assert_refused(response, (400,))


@pytest.mark.parametrize("url", [
    "/api/runs/?q=name%20%3D%20%22%00%22", "/api/runs/?sort=%00", "/api/runs/?project=%00", "/api/search/?q=a%00b",
    "/api/papers/?q=%00", "/api/papers/?tag=%00", "/api/logs/?tag=%00", "/api/jobs/?status=%00",
    "/api/runs/{run}/series/?keys=%00", "/search/?q=a%00b", "/runs/?q=%00", "/papers/?q=%00", "/logs/?tag=%00",
    "/runs/export.csv?q=%00", "/api/runs/{run}/series/a%00b/raw/",
])
def test_a_nul_character_in_a_url_is_400_not_500(api_client, auth_client, run, url):
    client = api_client if url.startswith("/api/") else auth_client
    assert client.get(url.format(run=run.pk)).status_code == 400


@pytest.mark.parametrize("method,url,body", [
    ("post", "/api/runs/", {"name": "a\u0000b"}), ("post", "/api/runs/", {"config": {"a": "\u0000"}}),
    ("post", "/api/runs/", {"config": {"a\u0000": 1}}), ("post", "/api/runs/", {"environment": {"x": "\u0000"}}),
    ("patch", "/api/runs/{run}/", {"notes": "\u0000"}), ("patch", "/api/runs/{run}/", {"config": {"x": "\u0000"}}),
    ("post", "/api/jobs/", {"kind": "train", "model": "mlp", "name": "a\u0000"}),
    ("post", "/api/jobs/", {"kind": "train", "model": "mlp", "project": "a\u0000"}),
    ("post", "/api/jobs/", {"kind": "train", "model": "mlp", "notes": "a\u0000"}),
    ("post", "/api/jobs/", {"kind": "train", "model": "mlp", "model_options": {"x": "\u0000"}}),
    ("post", "/api/logs/", {"kind": "note", "title": "t", "body": "\u0000"}),
    ("post", "/api/papers/", {"title": "a\u0000"}), ("post", "/api/projects/", {"name": "a\u0000"}),
    ("post", "/api/runs/{run}/metrics/", {"points": [{"key": "a\u0000", "step": 0, "value": 1}]}),
    ("post", "/api/runs/", {"started_at": "9999-12-31T23:59:59+14:00"}), ("post", "/api/runs/", {"seed": 2**70}),
])
def test_nul_characters_and_out_of_range_values_in_json_bodies_are_400_not_500(api_client, run, method, url, body):
    body = {"project": "p", **body} if url == "/api/runs/" else body
    response = getattr(api_client, method)(url.format(run=run.pk), body, format="json")
    assert response.status_code in (200, 201, 202, 400), (response.status_code, response.content[:300])


def test_a_form_with_more_fields_than_django_allows_is_a_json_400(api_client, settings):
    """Found by the schemathesis run: a multipart body with thousands of fields made Django raise TooManyFieldsSent
    while DRF parsed it, which Django answered with its HTML error page."""
    body = {"action": "tag", "tags": ["x"], "ids": [str(i) for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)]}
    resp = api_client.post("/api/runs/bulk/", body, format="multipart")
    assert resp.status_code == 400
    assert resp["Content-Type"] == "application/json"
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in resp.json()["errors"]["non_field_errors"][0]
