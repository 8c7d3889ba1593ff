"""API fuzzing: schemathesis generates requests from our OpenAPI schema (/api/schema/) and sends them to a real
uvicorn server with a token, on a bounded budget (a few examples per operation, under a minute in all, fixed seed).
No request may get a 5xx, and responses must match the documented status codes, content types, headers and
response schemas. What it found on first run (all fixed): a 500 on a non-object JSON body, HTML 404 pages under
/api/, undocumented 400/401/403/404/413 answers, paginated lists documented as arrays, blank URLs and non-ASCII
slugs outside their documented formats, and a create response missing a field."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from labbook.core.services import token_create
from tests.conftest import start_asgi_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BUDGET_S = 40
CHECKS = os.environ.get("LABBOOK_FUZZ_CHECKS", "not_a_server_error,status_code_conformance,content_type_conformance,"
                        "response_schema_conformance,response_headers_conformance")


def test_schemathesis_finds_no_server_error_and_responses_match_the_schema(tmp_path, user):
    from experiments import services

    # Something to find: a run, so that id-shaped parameters sometimes hit a real row.
    project = services.project_get_or_create(owner=user, name="fuzz")
    run = services.run_create(owner=user, project=project, name="fuzz", config={"lr": 0.1})
    _, token = token_create(user=user, name="fuzz")
    server = start_asgi_server(tmp_path, LABBOOK_ARTIFACT_ROOT=str(tmp_path / "artifacts"))
    report = tmp_path / "report"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", "--no-color", f"{server.url}/api/schema/",
             "--header", f"Authorization: Bearer {token}", "--checks", CHECKS,
             "--max-examples", "6", "--seed", "20261123", "--workers", "1", "--no-shrink",
             "--phases", "examples,coverage,fuzzing", "--max-time", str(BUDGET_S), "--request-timeout", "20",
             "--generation-database", "none", "--suppress-health-check", "all",
             "--report", "ndjson", "--report-dir", str(report)],
            cwd=tmp_path, capture_output=True, text=True, timeout=BUDGET_S + 60,  # it keeps a cache dir in its cwd
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-8000:] + "\n--- server log ---\n" + server.log()[-4000:]
        assert "Traceback" not in server.log(), server.log()[-4000:]
        assert run.pk  # the server saw our data: its own log has requests for /api/runs/
        # The budget really exercised the API: many operations were tested, not a handful.
        (ndjson,) = report.glob("*.ndjson")
        events = [json.loads(line) for line in ndjson.read_text().splitlines() if line.strip()]
        assert len(events) > 100, len(events)
        tested = re.search(r"Tested: (\d+)", output)
        assert tested and int(tested.group(1)) > 50, output[-3000:]  # every operation of the schema, 60-odd
    finally:
        server.stop()
