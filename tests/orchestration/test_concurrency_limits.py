"""EnforceConcurrencyLimits (apps/concurrency/rules.py): tag limits make task runs WAIT for a slot."""

from __future__ import annotations

import pytest
from django.conf import settings

from apps.concurrency.services import concurrency_limit_create
from orchestrator.states import (
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    Paused,
    Running,
    TimedOut,
)
from tests.concurrency.support import slots_of
from tests.orchestration.helpers import check_proposal, propose, task_run_in, walk

pytestmark = pytest.mark.django_db


def _slots(tag: str) -> list[str]:
    return slots_of(tag)


def _holders(count: int, tags: list[str], **kwargs) -> list:
    return [task_run_in(None, "Running", task_key=f"holder-{i}", tags=tags, **kwargs) for i in range(count)]


class TestEnforceConcurrencyLimits:
    @pytest.mark.parametrize(
        ("limits", "holders", "tags", "status", "stored"),
        [
            ({"db": 2}, 0, ["db"], "ACCEPT", "Running"),
            ({"db": 2}, 1, ["db"], "ACCEPT", "Running"),
            ({"db": 2}, 2, ["db"], "WAIT", "Pending"),
            ({"db": 0}, 0, ["db"], "WAIT", "Pending"),
            ({"db": 1}, 1, ["other"], "ACCEPT", "Running"),
            ({"db": 1}, 1, ["db", "other"], "WAIT", "Pending"),
            ({"db": 1}, 1, [], "ACCEPT", "Running"),
            ({}, 0, ["db"], "ACCEPT", "Running"),
        ],
    )
    def test_a_task_run_waits_while_a_limit_on_its_tags_is_full(self, flow, limits, holders, tags, status, stored):
        """At most `limit` task runs with a tag run at once; the rest are told to try again shortly."""
        for tag, limit in limits.items():
            concurrency_limit_create(tag=tag, limit=limit)
        _holders(holders, ["db"])
        run = task_run_in(None, "Pending", task_key="newcomer", tags=tags)

        result = check_proposal(run, Running(), status, stored)

        if status == "WAIT":
            assert result.delay_seconds == settings.ORCHESTRATION_CONCURRENCY_WAIT_SECONDS
            assert "concurrency limit for tag 'db' is full" in result.reason
            assert str(run.id) not in _slots("db")
        elif "db" in tags and limits:
            assert str(run.id) in _slots("db")

    def test_a_waiting_run_takes_no_slot_on_its_other_tags(self, flow):
        """A run that cannot start must not hold slots on the tags that had room: that would starve others."""
        concurrency_limit_create(tag="a", limit=1)
        concurrency_limit_create(tag="b", limit=1)
        _holders(1, ["b"])
        run = task_run_in(None, "Pending", task_key="both", tags=["a", "b"])

        check_proposal(run, Running(), "WAIT", "Pending")

        assert _slots("a") == []

    def test_a_run_takes_a_slot_on_every_limited_tag(self, flow):
        """A run counts against each of its limits while it runs."""
        concurrency_limit_create(tag="a", limit=3)
        concurrency_limit_create(tag="b", limit=3)
        run = task_run_in(None, "Pending", task_key="both", tags=["a", "b", "free"])

        check_proposal(run, Running(), "ACCEPT", "Running")

        assert _slots("a") == _slots("b") == [str(run.id)]

    def test_running_again_does_not_take_a_second_slot(self, flow):
        """A RUNNING -> RUNNING proposal (a renamed or repeated Running) already holds its slot."""
        concurrency_limit_create(tag="db", limit=1)
        (holder,) = _holders(1, ["db"])

        check_proposal(holder, Running(name="Retrying"), "ACCEPT", "Retrying")

        assert _slots("db") == [str(holder.id)]

    @pytest.mark.parametrize(
        ("end", "force", "stored"),
        [
            (Completed, False, "Completed"),
            (Failed, False, "Failed"),
            (TimedOut, False, "TimedOut"),
            (Crashed, False, "Crashed"),
            (Cancelled, False, "Cancelled"),
            (Cancelling, False, "Cancelling"),
            (Paused, False, "Paused"),
            (Crashed, True, "Crashed"),
            (Completed, True, "Completed"),
            (Cancelled, True, "Cancelled"),
        ],
    )
    def test_a_slot_is_freed_when_its_run_stops_running(self, flow, end, force, stored):
        """Every way out of RUNNING, forced ones included, frees the slot, or the limit would leak shut."""
        concurrency_limit_create(tag="db", limit=1)
        (holder,) = _holders(1, ["db"])
        waiting = task_run_in(None, "Pending", task_key="waiting", tags=["db"])
        check_proposal(waiting, Running(), "WAIT", "Pending")

        result = propose(holder, end(), force=force)

        assert (result.status.value, result.state.name) == ("ACCEPT", stored)
        assert _slots("db") == []
        check_proposal(waiting, Running(), "ACCEPT", "Running")
        assert _slots("db") == [str(waiting.id)]

    def test_a_slot_is_freed_when_a_failure_becomes_a_retry(self, flow):
        """A run waiting out its retry delay is not running, so it must not block others meanwhile."""
        concurrency_limit_create(tag="db", limit=1)
        (holder,) = _holders(1, ["db"], empirical_policy={"retries": 1})
        waiting = task_run_in(None, "Pending", task_key="waiting", tags=["db"])

        check_proposal(holder, Failed(), "REJECT", "AwaitingRetry")

        assert _slots("db") == []
        check_proposal(waiting, Running(), "ACCEPT", "Running")
        check_proposal(holder, Running(), "WAIT", "AwaitingRetry")

    def test_a_cache_hit_takes_no_slot(self, flow):
        """A task answered from the cache never runs, so it must not wait for or hold a slot."""
        concurrency_limit_create(tag="db", limit=1)
        producer = task_run_in(None, "Pending", task_key="producer", tags=["db"])
        walk(producer, Running(cache_key="k"), Completed(data=1))
        _holders(1, ["db"])
        consumer = task_run_in(None, "Pending", task_key="consumer", tags=["db"])

        check_proposal(consumer, Running(cache_key="k"), "REJECT", "Cached")

        assert str(consumer.id) not in _slots("db")
