"""/api/flows/: get-or-create by name, list, retrieve, rename (409 on a taken name), delete."""

from __future__ import annotations

import uuid

from apps.flows.models import Flow
from apps.runs.models import FlowRun
from tests.api.support import assert_error, assert_json


def test_post_creates_a_new_flow_with_201(api):
    """The SDK registers a flow on its first run; a new name is created."""
    response = api.post("/api/flows/", {"name": "etl", "tags": ["team-a", "team-a", "nightly"]}, format="json")
    body = assert_json(response)
    assert response.status_code == 201
    assert body["name"] == "etl"
    assert body["tags"] == ["team-a", "nightly"]
    assert uuid.UUID(body["id"])
    assert Flow.objects.get(pk=body["id"]).name == "etl"


def test_post_with_an_existing_name_returns_that_flow_with_200(api, flow):
    """Every run of a flow posts its name: the second post must not create a duplicate."""
    response = api.post("/api/flows/", {"name": "etl", "tags": ["other"]}, format="json")
    assert response.status_code == 200
    assert response.json()["id"] == str(flow.id)
    assert Flow.objects.count() == 1


def test_unicode_names_round_trip(api):
    """Names are user text: emoji and right-to-left scripts must survive storage unchanged."""
    for name in ["daily 📊 report", "تقرير يومي", "'; DROP TABLE flows_flow; --"]:
        response = api.post("/api/flows/", {"name": name}, format="json")
        assert response.status_code == 201, response.content
        assert api.get(f"/api/flows/{response.json()['id']}/").json()["name"] == name


def test_list_is_paginated_and_ordered_by_name(api):
    """The flows page lists flows alphabetically, one page at a time."""
    for name in ["charlie", "alpha", "bravo"]:
        api.post("/api/flows/", {"name": name}, format="json")
    body = api.get("/api/flows/?limit=2").json()
    assert [flow["name"] for flow in body["results"]] == ["alpha", "bravo"]
    assert body["previous"] is None
    second = api.get(body["next"]).json()
    assert [flow["name"] for flow in second["results"]] == ["charlie"]
    assert second["next"] is None
    assert second["previous"] is not None


def test_list_filters_by_name_substring(api):
    """The UI's flow search box sends name__icontains."""
    for name in ["load-orders", "load-users", "report"]:
        api.post("/api/flows/", {"name": name}, format="json")
    body = api.get("/api/flows/?name__icontains=LOAD").json()
    assert sorted(flow["name"] for flow in body["results"]) == ["load-orders", "load-users"]


def test_retrieve_returns_the_flow(api, flow):
    """Clients look a flow up by the id they stored."""
    body = api.get(f"/api/flows/{flow.id}/").json()
    assert body["id"] == str(flow.id)
    assert body["name"] == "etl"
    assert body["tags"] == ["team-a"]
    assert {"created", "updated"} <= set(body)


def test_patch_renames_and_retags(api, flow):
    """Renaming a flow keeps its id and its runs."""
    response = api.patch(f"/api/flows/{flow.id}/", {"name": "etl-v2", "tags": ["b"]}, format="json")
    assert response.status_code == 200
    flow.refresh_from_db()
    assert (flow.name, flow.tags) == ("etl-v2", ["b"])


def test_patch_with_only_tags_keeps_the_name(api, flow):
    """PATCH changes only the fields it sends."""
    api.patch(f"/api/flows/{flow.id}/", {"tags": []}, format="json")
    flow.refresh_from_db()
    assert (flow.name, flow.tags) == ("etl", [])


def test_patch_to_a_taken_name_is_a_409_naming_the_field(api, flow):
    """Flow names are unique; a rename onto another flow's name is a conflict, and nothing changes."""
    other = Flow.objects.create(name="other")
    response = api.patch(f"/api/flows/{other.id}/", {"name": "etl"}, format="json")
    assert_error(response, 409, code="conflict", field="name")
    other.refresh_from_db()
    assert other.name == "other"


def test_delete_removes_the_flow_and_its_runs(api, flow_run):
    """Deleting a flow deletes its history; a second delete is a 404."""
    flow_id = flow_run.flow_id
    assert api.delete(f"/api/flows/{flow_id}/").status_code == 204
    assert not Flow.objects.filter(pk=flow_id).exists()
    assert not FlowRun.objects.filter(pk=flow_run.pk).exists()
    assert_error(api.delete(f"/api/flows/{flow_id}/"), 404, code="not_found")
    assert_error(api.get(f"/api/flows/{flow_id}/"), 404, code="not_found")
