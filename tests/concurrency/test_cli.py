"""`orchestrator concurrency-limit create|ls|inspect|reset|delete`: the verbs, their tables and their errors (the
CLI prints a ClientError as one line: tests/cli covers that for every command)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from apps.concurrency.models import ConcurrencyLimit
from orchestrator.client.errors import ClientError
from tests.concurrency.support import hold, slots_of

pytestmark = pytest.mark.django_db(transaction=True)  # the in-process client reads committed rows


def limit(*args: str) -> str:
    out = StringIO()
    call_command("concurrency-limit", *args, stdout=out)
    return out.getvalue()


def test_create_ls_inspect_reset_delete() -> None:
    assert limit("create", "db", "2").strip() == "Created concurrency limit 'db': 2 slot(s)."
    assert ConcurrencyLimit.objects.get(tag="db").limit == 2
    hold("db", "3f2a0c7e-run-holding")
    listed = limit("ls")
    assert "db" in listed and "in use" in listed
    inspected = limit("inspect", "db")
    assert "limit:    2" in inspected and "in use:   1" in inspected and "3f2a0c7e-run-holding" in inspected
    assert limit("reset", "db").strip() == "Freed every slot of concurrency limit 'db' (limit 2)."
    assert slots_of("db") == []
    assert "held by task runs: none" in limit("inspect", "db")
    assert limit("delete", "db").strip() == "Deleted concurrency limit 'db'."
    assert not ConcurrencyLimit.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("inspect", "nope"), "no concurrency limit for tag 'nope'"),
        (("reset", "nope"), "no concurrency limit for tag 'nope'"),
        (("delete", "nope"), "no concurrency limit for tag 'nope'"),
        (("create", "a/b", "1"), "may not contain '/'"),
    ],
)
def test_errors_name_what_is_wrong(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(ClientError, match=message):
        limit(*args)


def test_a_duplicate_tag_is_refused() -> None:
    limit("create", "db", "1")
    with pytest.raises(ClientError, match="already exists"):
        limit("create", "db", "3")
    assert ConcurrencyLimit.objects.get(tag="db").limit == 1


def global_limit(*args: str) -> str:
    out = StringIO()
    call_command("global-concurrency-limit", *args, stdout=out)
    return out.getvalue()


def test_global_limits_create_ls_inspect_reset_delete() -> None:
    from apps.concurrency.models import GlobalConcurrencyLimit
    from apps.concurrency.services import concurrency_lease_acquire

    assert global_limit("create", "db", "2").strip() == "Created global concurrency limit 'db': 2 slot(s)."
    created = global_limit("create", "api", "5", "--slot-decay-per-second", "0.5").strip()
    assert created == "Created global concurrency limit 'api': 5 slot(s), decaying at 0.5 slot(s)/s."
    concurrency_lease_acquire(global_limit=GlobalConcurrencyLimit.objects.get(name="db"), slots=2, holder_id="me")
    assert "db" in global_limit("ls") and "decay/s" in global_limit("ls")
    inspected = global_limit("inspect", "db")
    assert "in use:   2" in inspected and "client me: 2 slot(s)" in inspected
    assert global_limit("reset", "db").strip() == "Freed every slot of global concurrency limit 'db' (limit 2)."
    assert "held by:  nobody" in global_limit("inspect", "db")
    assert global_limit("delete", "db").strip() == "Deleted global concurrency limit 'db'."
    with pytest.raises(ClientError, match="global-concurrency-limit create db N"):
        global_limit("inspect", "db")
