"""Batch ingestion API: idempotency, limits, validation naming the field, ownership."""
from __future__ import annotations

import json

import pytest

from experiments.models import MetricPoint
from tests.experiments.factories import make_run

pytestmark = pytest.mark.django_db


def post(client, run, payload):
    return client.post(f"/api/runs/{run.pk}/metrics/", data=json.dumps(payload), content_type="application/json")


def test_row_and_column_forms_store_every_point_and_update_the_summary(api_client, user):
    run = make_run(user)
    payload = {
        "points": [{"key": "loss", "step": s, "value": 1.0 / (s + 1), "wall_time": 1e9 + s} for s in range(5)],
        "series": [{"key": "acc", "steps": [0, 1, 2], "values": [0.1, 0.7, 0.5]}],
    }
    resp = post(api_client, run, payload)
    assert resp.status_code == 201, resp.content
    assert resp.json() == {"received": 8, "stored": 8, "duplicates": 0}
    run.refresh_from_db()
    assert run.metric_summary["acc"]["last"] == 0.5 and run.metric_summary["acc"]["best"] == 0.7
    assert run.metric_summary["acc"]["best_step"] == 1
    assert run.metric_summary["loss"]["best"] == 0.2 and run.metric_summary["loss"]["count"] == 5


def test_a_retried_batch_stores_nothing_twice(api_client, user):
    run = make_run(user)
    payload = {"series": [{"key": "loss", "steps": list(range(100)), "values": [float(i) for i in range(100)]}]}
    assert post(api_client, run, payload).json()["stored"] == 100
    again = post(api_client, run, payload)
    assert again.status_code == 200
    assert again.json() == {"received": 100, "stored": 0, "duplicates": 100}
    # a partly overlapping batch stores only the new steps
    overlap = {"series": [{"key": "loss", "steps": [99, 100, 101], "values": [0.0, 1.0, 2.0]}]}
    assert post(api_client, run, overlap).json() == {"received": 3, "stored": 2, "duplicates": 1}
    assert MetricPoint.objects.filter(run=run).count() == 102
    run.refresh_from_db()
    assert run.metric_summary["loss"]["count"] == 102
    assert run.metric_summary["loss"]["last_step"] == 101


def test_more_than_ten_thousand_points_is_413_with_a_clear_message(api_client, user):
    run = make_run(user)
    payload = {"series": [{"key": "x", "steps": list(range(10_001)), "values": [0.0] * 10_001}]}
    resp = post(api_client, run, payload)
    assert resp.status_code == 413
    assert "10000" in resp.json()["detail"] and "10001" in resp.json()["detail"]
    assert not MetricPoint.objects.filter(run=run).exists()
    ok = {"series": [{"key": "x", "steps": list(range(10_000)), "values": [0.0] * 10_000}]}
    assert post(api_client, run, ok).json()["stored"] == 10_000


@pytest.mark.parametrize(
    ("point", "field"),
    [
        ({"key": "a", "step": 1, "value": "NaN"}, "points[1].value"),
        ({"key": "a", "step": 1, "value": None}, "points[1].value"),
        ({"key": "bad key!", "step": 1, "value": 1.0}, "points[1].key"),
        ({"key": "a", "step": -1, "value": 1.0}, "points[1].step"),
        ({"key": "a", "step": 1.5, "value": 1.0}, "points[1].step"),
        ({"key": "a", "value": 1.0}, "points[1].step"),
        ({"key": "a", "step": 2, "value": True}, "points[1].value"),
    ],
)
def test_invalid_points_are_400_naming_field_and_index(api_client, user, point, field):
    run = make_run(user)
    resp = post(api_client, run, {"points": [{"key": "ok", "step": 0, "value": 1.0}, point]})
    assert resp.status_code == 400, resp.content
    assert field in resp.json()["errors"]
    assert not MetricPoint.objects.filter(run=run).exists()  # all or nothing


def test_nan_and_infinity_literals_are_rejected_naming_the_field(api_client, user):
    run = make_run(user)
    body = '{"series": [{"key": "loss", "steps": [0, 1, 2], "values": [1.0, Infinity, NaN]}]}'
    resp = api_client.post(f"/api/runs/{run.pk}/metrics/", data=body, content_type="application/json")
    assert resp.status_code == 400
    assert "series[0].values[1]" in resp.json()["errors"]


def test_integers_beyond_64_bits_are_rejected_naming_the_field(api_client, user):
    run = make_run(user)  # the fast JSON parser refuses them; the fallback parser lets validation name the item
    body = '{"series": [{"key": "loss", "steps": [0, 18446744073709551616], "values": [1.0, 2.0]}]}'
    resp = api_client.post(f"/api/runs/{run.pk}/metrics/", data=body, content_type="application/json")
    assert resp.status_code == 400
    assert "series[0].steps[1]" in resp.json()["errors"]
    assert not MetricPoint.objects.filter(run=run).exists()


def test_mismatched_columns_and_garbage_are_400(api_client, user):
    run = make_run(user)
    resp = post(api_client, run, {"series": [{"key": "a", "steps": [0, 1], "values": [1.0]}]})
    assert resp.status_code == 400 and "series[0].values" in resp.json()["errors"]
    resp = api_client.post(f"/api/runs/{run.pk}/metrics/", data="{not json", content_type="application/json")
    assert resp.status_code == 400
    assert post(api_client, run, [1, 2]).status_code == 400


def test_another_users_run_is_404_and_unauthenticated_is_refused(client, api_client, user, other_user):
    theirs = make_run(other_user)
    assert post(api_client, theirs, {"points": [{"key": "a", "step": 0, "value": 1}]}).status_code == 404
    assert not MetricPoint.objects.filter(run=theirs).exists()
    mine = make_run(user)
    assert post(client, mine, {"points": [{"key": "a", "step": 0, "value": 1}]}).status_code in (401, 403)


@pytest.mark.parametrize(
    ("series", "field"),
    [
        ({"key": "a", "steps": [0, 1, 2], "values": [1.0, True, 2.0]}, "series[0].values[1]"),
        ({"key": "a", "steps": [0, 1, 2], "values": [1.0, 2.0, 3.0], "wall_times": [1.0, float("inf"), 2.0]},
         "series[0].wall_times[1]"),
        ({"key": "a", "steps": [0, 1, 2], "values": [1e308, 1e308, 1e308]}, None),  # finite: a sum overflow is fine
        ({"key": "a", "steps": [0, 2, 1.0], "values": [1.0, 2.0, 3.0]}, "series[0].steps[2]"),
    ],
)
def test_column_form_fast_path_agrees_with_the_item_checks(api_client, user, series, field):
    run = make_run(user)
    body = json.dumps({"series": [series]})  # float("inf") becomes the Infinity literal
    resp = api_client.post(f"/api/runs/{run.pk}/metrics/", data=body, content_type="application/json")
    if field is None:
        assert resp.status_code == 201 and resp.json()["stored"] == 3
    else:
        assert resp.status_code == 400 and field in resp.json()["errors"], resp.content


def test_ingested_points_are_published_to_the_live_stream(api_client, user):
    from runner import streams

    run = make_run(user)
    streams.reset(run.pk)
    post(api_client, run, {"series": [{"key": "loss", "steps": [0, 1], "values": [0.9, 0.8]}]})
    events = streams.read_events(run.pk)
    assert [e[1] for e in events] == ["metrics"]
    assert [(p["key"], p["step"], p["value"]) for p in events[0][2]["points"]] == [("loss", 0, 0.9), ("loss", 1, 0.8)]
    post(api_client, run, {"series": [{"key": "loss", "steps": [0, 1], "values": [0.9, 0.8]}]})  # a retry
    assert len(streams.read_events(run.pk)) == 1  # nothing new stored, nothing published
