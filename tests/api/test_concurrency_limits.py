"""/api/concurrency_limits/: create (409 on a duplicate tag), read by tag, change the limit, delete."""

from __future__ import annotations

from apps.concurrency.models import ConcurrencyLimit
from tests.api.support import assert_error, assert_json, snapshot
from tests.concurrency.support import hold, slots_of


def test_create_returns_the_limit_with_no_active_slots(api, db):
    """`concurrency-limit create TAG N` posts here."""
    response = api.post("/api/concurrency_limits/", {"tag": "database", "limit": 3}, format="json")
    body = assert_json(response)
    assert response.status_code == 201
    assert (body["tag"], body["limit"], body["active_slots"]) == ("database", 3, [])


def test_a_second_limit_for_the_same_tag_is_a_409(api, concurrency_limit):
    """One limit per tag; the duplicate is refused by name and the first is unchanged."""
    before = snapshot()
    response = api.post("/api/concurrency_limits/", {"tag": "database", "limit": 9}, format="json")
    assert_error(response, 409, code="conflict", field="tag")
    assert snapshot() == before


def test_get_by_tag(api, concurrency_limit):
    """Limits are addressed by their tag, which users know, not by id."""
    body = api.get("/api/concurrency_limits/database/").json()
    assert (body["id"], body["limit"]) == (str(concurrency_limit.id), 2)


def test_unicode_tags_are_addressable(api, db):
    """A tag in any script can be created and read back through its URL."""
    api.post("/api/concurrency_limits/", {"tag": "données-📊", "limit": 1}, format="json")
    assert api.get("/api/concurrency_limits/données-📊/").json()["limit"] == 1


def test_patch_changes_the_limit(api, concurrency_limit):
    """Operators raise or lower a limit without recreating it."""
    response = api.patch("/api/concurrency_limits/database/", {"limit": 5}, format="json")
    assert (response.status_code, response.json()["limit"]) == (200, 5)
    assert ConcurrencyLimit.objects.get().limit == 5


def test_patch_cannot_rename_the_tag(api, concurrency_limit):
    """The tag is the limit's identity; PATCH refuses it by name."""
    assert_error(api.patch("/api/concurrency_limits/database/", {"tag": "x"}, format="json"), 400, field="tag")


def test_delete_then_404(api, concurrency_limit):
    """A deleted limit is gone."""
    assert api.delete("/api/concurrency_limits/database/").status_code == 204
    assert_error(api.get("/api/concurrency_limits/database/"), 404, code="not_found")
    assert_error(api.delete("/api/concurrency_limits/database/"), 404, code="not_found")


def test_list_is_ordered_by_tag(api, db):
    """The limits page lists tags alphabetically."""
    for tag in ["b", "c", "a"]:
        api.post("/api/concurrency_limits/", {"tag": tag, "limit": 1}, format="json")
    body = api.get("/api/concurrency_limits/").json()
    assert [row["tag"] for row in body["results"]] == ["a", "b", "c"]
    assert body["next"] is None


def test_reset_frees_every_slot(api, concurrency_limit):
    """Slots held by runs whose process died come back at once with a reset (`concurrency-limit reset TAG`)."""
    hold("database", "a1", "b2")
    body = assert_json(api.post("/api/concurrency_limits/database/reset/"))
    assert (body["active_slots"], body["limit"]) == ([], 2)
    assert slots_of("database") == []


def test_reset_or_read_of_an_unknown_tag_names_it(api, db):
    for response in (api.post("/api/concurrency_limits/nope/reset/"), api.get("/api/concurrency_limits/nope/")):
        assert_error(response, 404, code="not_found")
        assert response.json()["message"] == "no concurrency limit for tag 'nope'"
