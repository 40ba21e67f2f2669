"""The block API (the contract the SDK builds on): create, read masked, secrets for admins only, by type and name,
PATCH keeping masked secrets, overwrite, and every refusal as a JSON error naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.deployments.services import deployment_upsert
from apps.flows.services import flow_get_or_create
from orchestrator.block_types import MASK
from tests.api.support import assert_error
from tests.blocks.support import flow_run_with_result_in, task_run_with_result_in

pytestmark = pytest.mark.django_db

SMTP = {"host": "mail.example.com", "port": 25, "username": "ops", "password": "s3cret", "from_address": "o@x.io"}


def create(client: APIClient, block_type: str, name: str, data: Any, **extra: Any) -> Any:
    return client.post(
        "/api/block_documents/", {"block_type": block_type, "name": name, "data": data, **extra}, format="json"
    )


def patch(client: APIClient, url: str, body: Any) -> Any:
    return client.patch(url, body, format="json")


def test_block_types_list_every_type_with_its_schema_and_secret_fields(api: APIClient) -> None:
    """The SDK and the admin build their forms and checks on this list."""
    page = api.get("/api/block_types/").json()
    assert set(page) == {"next", "previous", "results"}
    types = {row["slug"]: row for row in page["results"]}
    assert set(types) == {
        "secret",
        "json",
        "local-file-system",
        "remote-file-system",
        "webhook",
        "slack-webhook",
        "smtp",
    }
    assert types["smtp"]["schema"]["secret_fields"] == ["password"]
    assert set(types["smtp"]) == {"slug", "version", "description", "schema"}
    one = api.get("/api/block_types/webhook/").json()
    assert one["schema"]["secret_fields"] == ["headers"] and one["version"] == 1
    assert_error(api.get("/api/block_types/nope/"), 404, code="not_found")


def test_create_returns_201_with_the_secret_masked(api: APIClient) -> None:
    """A write key creates configuration; the answer never echoes the secret."""
    response = create(api, "secret", "db-password", {"value": "hunter2"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "block_type", "block_type_version", "name", "data", "created", "updated"}
    assert body["data"] == {"value": MASK} and body["block_type"] == "secret" and body["block_type_version"] == 1
    assert "hunter2" not in response.content.decode()


def test_reads_are_masked_for_every_scope_and_secrets_are_for_admins_only(
    api: APIClient, admin_api: APIClient, key_client: Any
) -> None:
    """Secret values are shown only to an admin key that asks; read and write keys get 403 saying so."""
    created = create(api, "webhook", "alerts", {"url": "https://hooks.example/x", "headers": {"X-Token": "t0k"}})
    document_id = created.json()["id"]
    reader = key_client("read")
    for client in (reader, api, admin_api):
        masked = client.get(f"/api/block_documents/{document_id}/").json()
        assert masked["data"]["headers"] == {"X-Token": MASK} and masked["data"]["url"] == "https://hooks.example/x"
        assert client.get("/api/block_documents/webhook/alerts/").json()["data"]["headers"] == {"X-Token": MASK}
    for client in (reader, api):
        for url in (
            f"/api/block_documents/{document_id}/?include_secrets=true",
            "/api/block_documents/webhook/alerts/?include_secrets=true",
            "/api/block_documents/?include_secrets=true",
        ):
            refused = assert_error(client.get(url), 403, code="permission_denied")
            assert "include_secrets=true needs admin scope" in refused["message"]
    shown = admin_api.get("/api/block_documents/webhook/alerts/?include_secrets=true").json()
    assert shown["data"]["headers"] == {"X-Token": "t0k"}
    listed = admin_api.get("/api/block_documents/?include_secrets=true").json()["results"]
    assert listed[0]["data"]["headers"] == {"X-Token": "t0k"}


def test_list_filters_by_type_and_name(api: APIClient) -> None:
    """`block ls --type` and the SDK's lookups filter on the server."""
    create(api, "secret", "a", {"value": "1"})
    create(api, "secret", "b", {"value": "2"})
    create(api, "json", "a", {"value": {"k": [1, 2]}})
    names = [(row["block_type"], row["name"]) for row in api.get("/api/block_documents/").json()["results"]]
    assert names == [("json", "a"), ("secret", "a"), ("secret", "b")]
    only = api.get("/api/block_documents/?block_type=secret&name=b").json()["results"]
    assert [row["name"] for row in only] == ["b"]
    assert api.get("/api/block_documents/json/a/").json()["data"] == {"value": {"k": [1, 2]}}


def test_patch_with_masked_secrets_keeps_them(api: APIClient, admin_api: APIClient) -> None:
    """A form or client round trip (read masked, change a field, send it all back) loses no secret."""
    document = create(api, "smtp", "mail", SMTP).json()
    data = {**document["data"], "port": 587}
    assert data["password"] == MASK
    patched = patch(api, f"/api/block_documents/{document['id']}/", {"data": data})
    assert patched.status_code == 200, patched.content
    assert patched.json()["data"]["port"] == 587 and patched.json()["data"]["password"] == MASK
    shown = admin_api.get("/api/block_documents/smtp/mail/?include_secrets=true").json()["data"]
    assert shown["password"] == "s3cret" and shown["port"] == 587
    changed = patch(api, f"/api/block_documents/{document['id']}/", {"data": {**data, "password": "new"}})
    assert changed.status_code == 200
    assert admin_api.get("/api/block_documents/smtp/mail/?include_secrets=true").json()["data"]["password"] == "new"


def test_patch_keeps_masked_values_inside_a_secret_mapping(api: APIClient, admin_api: APIClient) -> None:
    """Each value of a secret mapping is masked on its own; sending the masks back keeps each stored value."""
    settings = {"key": "AKIA", "secret": "shh", "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}
    document = create(api, "remote-file-system", "lake", {"basepath": "s3://bucket/p", "settings": settings}).json()
    masked = document["data"]["settings"]
    assert masked == {"key": MASK, "secret": MASK, "client_kwargs": {"endpoint_url": MASK}}
    data = {"basepath": "s3://bucket/q", "settings": {**masked, "secret": "rotated"}}
    assert patch(api, f"/api/block_documents/{document['id']}/", {"data": data}).status_code == 200
    shown = admin_api.get("/api/block_documents/remote-file-system/lake/?include_secrets=true").json()["data"]
    assert shown == {"basepath": "s3://bucket/q", "settings": {**settings, "secret": "rotated"}}


def test_patch_validates_the_data_in_full(api: APIClient) -> None:
    """PATCH replaces the data: a missing required field is named, and nothing changes."""
    document = create(api, "smtp", "mail", SMTP).json()
    refused = patch(api, f"/api/block_documents/{document['id']}/", {"data": {"host": "h"}})
    assert_error(refused, 400, code="invalid_input", field="data.from_address")
    assert api.get(f"/api/block_documents/{document['id']}/").json()["data"]["host"] == "mail.example.com"
    assert_error(patch(api, f"/api/block_documents/{document['id']}/", {"name": "x"}), 400, field="name")


def test_a_taken_name_is_409_unless_overwrite(api: APIClient, admin_api: APIClient) -> None:
    """`Secret(...).save(name)` twice is a conflict naming the block; `overwrite=True` replaces its data (200)."""
    first = create(api, "secret", "db-password", {"value": "one"}).json()
    conflict = assert_error(create(api, "secret", "db-password", {"value": "two"}), 409, code="conflict")
    assert "secret/db-password" in conflict["message"]
    replaced = create(api, "secret", "db-password", {"value": "two"}, overwrite=True)
    assert replaced.status_code == 200 and replaced.json()["id"] == first["id"]
    assert admin_api.get("/api/block_documents/secret/db-password/?include_secrets=true").json()["data"] == {
        "value": "two"
    }
    assert create(api, "json", "db-password", {"value": 1}).status_code == 201  # unique per type only


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"block_type": "nope", "name": "x", "data": {}}, "block_type"),
        ({"block_type": "smtp", "name": "x", "data": {**SMTP, "port": "many"}}, "data.port"),
        ({"block_type": "smtp", "name": "x", "data": {**SMTP, "port": 0}}, "data.port"),
        ({"block_type": "smtp", "name": "x", "data": {"host": "h"}}, "data.from_address"),
        ({"block_type": "webhook", "name": "x", "data": {"url": "ftp://x"}}, "data.url"),
        ({"block_type": "webhook", "name": "x", "data": {"url": "https://x", "method": "BREW"}}, "data.method"),
        ({"block_type": "secret", "name": "x", "data": {"value": "v", "extra": 1}}, "data.extra"),
        ({"block_type": "secret", "name": "x", "data": {"value": MASK}}, "data.value"),
        ({"block_type": "secret", "name": "x", "data": "v"}, "data"),
        ({"block_type": "secret", "name": "a/b", "data": {"value": "v"}}, "name"),
        ({"block_type": "secret", "name": "x", "data": {"value": "v"}, "color": 1}, "color"),
    ],
)
def test_bad_input_is_400_naming_the_field(api: APIClient, body: dict[str, Any], field: str) -> None:
    """Unknown types, data the type refuses (by pydantic's location), bad names and unknown fields: each named."""
    assert_error(api.post("/api/block_documents/", body, format="json"), 400, field=field)
    assert api.get("/api/block_documents/").json()["results"] == []


def test_missing_documents_are_404(api: APIClient) -> None:
    for url in (
        "/api/block_documents/00000000-0000-0000-0000-000000000000/",
        "/api/block_documents/secret/absent/",
        "/api/block_documents/no-type/absent/",
    ):
        assert_error(api.get(url), 404, code="not_found")


def test_delete_is_204_and_409_naming_the_deployments_that_use_the_block(api: APIClient) -> None:
    """A deployment's code lives in its storage block: deleting the block would strand it."""
    used = create(api, "remote-file-system", "code", {"basepath": "s3://bucket/code"}).json()
    spare = create(api, "secret", "spare", {"value": "v"}).json()
    flow = flow_get_or_create(name="etl")[0]
    deployment_upsert(flow=flow, name="nightly", values={"storage_block": "remote-file-system/code"})
    refused = assert_error(api.delete(f"/api/block_documents/{used['id']}/"), 409, code="conflict")
    assert "etl/nightly" in refused["message"] and "remote-file-system/code" in refused["message"]
    assert api.delete(f"/api/block_documents/{spare['id']}/").status_code == 204
    assert api.get(f"/api/block_documents/{spare['id']}/").status_code == 404
    assert api.get(f"/api/block_documents/{used['id']}/").status_code == 200


def test_delete_is_409_naming_the_runs_whose_results_the_block_holds(api: APIClient) -> None:
    """A persisted result is read back through its block: deleting the block would lose it. The reference is found
    in any state's JSON data (SQLite and PostgreSQL alike); a result in another block does not count."""
    lake = create(api, "remote-file-system", "lake", {"basepath": "s3://bucket/results"}).json()
    other = create(api, "local-file-system", "lake", {"basepath": "/tmp/results"}).json()
    flow_run_with_result_in("remote-file-system/lake", "nightly-load")
    task_run_with_result_in("remote-file-system/lake", "load-orders")
    flow_run_with_result_in("local-file-system/elsewhere", "unrelated")
    refused = assert_error(api.delete(f"/api/block_documents/{lake['id']}/"), 409, code="conflict")
    message = refused["message"]
    assert message.startswith("block remote-file-system/lake holds the results of flow run 'nightly-load', task run")
    assert "'load-orders'" in message and "unrelated" not in message
    assert api.delete(f"/api/block_documents/{other['id']}/").status_code == 204


def test_the_refusal_names_the_first_runs_and_says_there_are_more(api: APIClient) -> None:
    lake = create(api, "remote-file-system", "lake", {"basepath": "s3://bucket/results"}).json()
    for number in range(5):
        flow_run_with_result_in("remote-file-system/lake", f"run-{number}")
    message = assert_error(api.delete(f"/api/block_documents/{lake['id']}/"), 409)["message"]
    assert message.count("flow run 'run-") == 3 and " and more;" in message


def test_read_keys_cannot_write_blocks(key_client: Any) -> None:
    reader = key_client("read")
    assert_error(create(reader, "secret", "x", {"value": "v"}), 403, code="permission_denied")
