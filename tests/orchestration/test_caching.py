"""AnswerFromCache (apps/orchestration/rules/caching.py): a valid cached result answers a task run with Cached."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.orchestration.models import CacheEntry
from apps.runs import services
from orchestrator.states import Completed, Failed, Pending, Running, utcnow
from tests.orchestration.helpers import check_proposal, flow_run_in, task_run_in, walk

pytestmark = pytest.mark.django_db

KEY = "add-1-2"


def _producer(flow, *, key: str = KEY, expires_in: float | None = None, end=Completed, data=None):
    """A task run in its own flow run that ran with `key` and ended with `end` (default: Completed)."""
    expiration = utcnow() + timedelta(seconds=expires_in) if expires_in is not None else None
    flow_run = flow_run_in(flow, "Running")
    task_run = task_run_in(flow_run, "Pending")
    return walk(
        task_run,
        Running(cache_key=key, cache_expiration=expiration),
        end(data=data if data is not None else {"value": 3}),
    )


def _consumer(flow):
    """A Pending task run in another flow run, about to start."""
    return task_run_in(flow_run_in(flow, "Running"), "Pending", task_key="other-task")


class TestAnswerFromCache:
    @pytest.mark.parametrize(
        ("producer", "proposal_details", "status", "stored"),
        [
            ({"end": Completed}, {"cache_key": KEY}, "REJECT", "Cached"),
            ({"end": Completed, "expires_in": 3600}, {"cache_key": KEY}, "REJECT", "Cached"),
            ({"end": Completed, "expires_in": -1}, {"cache_key": KEY}, "ACCEPT", "Running"),
            ({"end": Completed}, {"cache_key": KEY, "refresh_cache": True}, "ACCEPT", "Running"),
            ({"end": Completed}, {"cache_key": "another-key"}, "ACCEPT", "Running"),
            ({"end": Completed}, {}, "ACCEPT", "Running"),
            ({"end": Failed}, {"cache_key": KEY}, "ACCEPT", "Running"),
            (None, {"cache_key": KEY}, "ACCEPT", "Running"),
        ],
        ids=["hit", "hit-before-expiry", "expired", "refresh", "other-key", "no-key", "producer-failed", "no-entry"],
    )
    def test_a_valid_cached_result_answers_the_run(self, flow, producer, proposal_details, status, stored):
        """A task whose inputs were already computed, and whose result is still valid, does not run again."""
        if producer is not None:
            _producer(flow, **producer)
        consumer = _consumer(flow)

        check_proposal(consumer, Running(state_details=proposal_details), status, stored)

    def test_the_cached_state_carries_the_earlier_result(self, flow):
        """The cache hit must hand back the producer's result, completed and final."""
        producer = _producer(flow, data={"value": 42})
        consumer = _consumer(flow)

        result = check_proposal(consumer, Running(cache_key=KEY), "REJECT", "Cached")

        assert result.state.type == "COMPLETED"
        assert result.state.data == {"value": 42}
        assert result.state.state_details["cache_key"] == KEY
        assert str(producer.id) in result.state.message
        assert "cached result" in result.reason
        assert consumer.cache_key == KEY
        assert consumer.end_time is not None
        assert consumer.run_count == 0

    def test_a_cache_key_given_at_creation_is_used(self, flow):
        """The SDK may send the cache key when it creates the task run rather than with Running."""
        _producer(flow)
        consumer, _ = services.task_run_create(flow_run=None, task_key="late", cache_key=KEY, state=Pending())

        check_proposal(consumer, Running(), "REJECT", "Cached")

    def test_a_refreshed_result_replaces_the_cached_one(self, flow):
        """refresh_cache recomputes, and later runs get the fresh result, not the old one."""
        _producer(flow, data={"value": 1})
        refresher = _consumer(flow)
        walk(refresher, Running(cache_key=KEY, state_details={"refresh_cache": True}), Completed(data={"value": 2}))
        later = _consumer(flow)

        result = check_proposal(later, Running(cache_key=KEY), "REJECT", "Cached")

        assert result.state.data == {"value": 2}
        assert CacheEntry.objects.filter(cache_key=KEY).count() == 1

    def test_a_cached_answer_does_not_become_a_cache_entry(self, flow):
        """Copies of a result must not extend its life: only a real run writes the cache."""
        producer = _producer(flow, expires_in=3600)
        entry = CacheEntry.objects.get(cache_key=KEY)
        check_proposal(_consumer(flow), Running(cache_key=KEY), "REJECT", "Cached")

        entry.refresh_from_db()
        assert entry.task_run_state.task_run_id == producer.id
