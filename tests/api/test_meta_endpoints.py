"""Health, version, the OpenAPI schema and the docs page: what monitoring and client generators rely on."""

from __future__ import annotations

import json

import pytest
import yaml
from django.db import connection

import orchestrator
from tests.api.support import assert_error, assert_json

DOCUMENTED_PATHS = [
    "/api/health/",
    "/api/version/",
    "/api/flows/",
    "/api/flows/{id}/",
    "/api/flow_runs/",
    "/api/flow_runs/{id}/",
    "/api/flow_runs/{id}/set_state/",
    "/api/flow_runs/{id}/states/",
    "/api/flow_runs/{id}/graph/",
    "/api/flow_runs/{id}/resume/",
    "/api/task_runs/",
    "/api/task_runs/{id}/",
    "/api/task_runs/{id}/set_state/",
    "/api/task_runs/{id}/states/",
    "/api/logs/",
    "/api/concurrency_limits/",
    "/api/concurrency_limits/{tag}/",
]


def test_health_reports_ok_and_the_database_in_use(api):
    """Load balancers and `server start` poll this to know the server and its database answer."""
    body = assert_json(api.get("/api/health/"))
    assert body == {"status": "ok", "database": connection.vendor}


def test_version_reports_the_package_and_api_versions(api):
    """Clients compare api_version before talking to a server."""
    response = api.get("/api/version/")
    body = assert_json(response)
    assert response.status_code == 200
    assert body["version"] == orchestrator.__version__
    assert body["api_version"] == orchestrator.API_VERSION
    assert body["database"] == connection.vendor
    assert {"django", "python"} <= set(body)


@pytest.mark.parametrize("path", ["/api/health/", "/api/version/"])
def test_meta_endpoints_refuse_writes_with_405_json(api, path):
    """A POST to a read-only endpoint is a clear 405, not an HTML page."""
    assert_error(api.post(path, {}, format="json"), 405, code="method_not_allowed")


def test_schema_is_openapi_3_yaml_listing_every_endpoint(api):
    """Client generators read /api/schema/; every documented endpoint must be in it."""
    response = api.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"]
    for path in DOCUMENTED_PATHS:
        assert path in schema["paths"], path


def test_schema_is_available_as_json(api):
    """Tools that only read JSON ask for it with ?format=json."""
    response = api.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert set(DOCUMENTED_PATHS) <= set(schema["paths"])
    flow_run_list = schema["paths"]["/api/flow_runs/"]["get"]
    parameters = {parameter["name"] for parameter in flow_run_list["parameters"]}
    assert {"state_type", "tags", "flow", "expected_start_time__gte", "limit", "offset", "ordering"} <= parameters


def test_docs_page_renders(api):
    """/api/docs/ is the browsable documentation users open in a browser."""
    response = api.get("/api/docs/")
    assert response.status_code == 200
    assert b"/api/schema/" in response.content


def test_docs_page_needs_no_internet(api):
    """Swagger UI's script and styles come from this server (the machine may have no internet): every asset the
    page names is a local /static/ path, and it is served."""
    import re

    page = api.get("/api/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', page)
    assert assets, page
    for asset in assets:
        assert asset.startswith("/static/"), asset
        response = api.get(asset)
        assert response.status_code == 200, asset


def test_the_api_root_lists_docs_schema_and_resources(api):
    """`server start` prints http://HOST:PORT/api: that URL must answer, and say where to go."""
    body = api.get("/api/").json()
    assert body["docs"].endswith("/api/docs/") and body["schema"].endswith("/api/schema/")
    for name, link in body["resources"].items():
        assert api.get(link).status_code == 200, name


def test_unknown_api_path_is_a_json_404(api):
    """A typo in a client's URL must come back as JSON the client can show, not the HTML error page."""
    assert_error(api.get("/api/no_such_endpoint/"), 404, code="not_found")
