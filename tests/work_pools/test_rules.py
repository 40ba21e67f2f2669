"""EnforceWorkPoolConcurrencyLimits (apps/work_pools/rules.py): a claim over the pool's or its queue's
concurrency limit WAITs, so a limit of N never shows N + 1 active runs however many workers claim at once."""

from __future__ import annotations

from collections import Counter

import pytest

from apps.orchestration import engine
from apps.work_pools.services import work_pool_create, work_pool_update, work_queue_create
from orchestrator.states import Cancelled, Cancelling, Completed, Pending, Running
from tests.orchestration.helpers import check_proposal, walk
from tests.orchestration.test_concurrent_proposals import run_in_threads
from tests.work_pools.conftest import scheduled_run


def _road(state: str):
    return {
        "Pending": [Pending()],
        "Running": [Pending(), Running()],
        "Cancelling": [Pending(), Running(), Cancelling()],
        "Completed": [Pending(), Running(), Completed()],
        "Cancelled": [Pending(), Running(), Cancelling(), Cancelled()],
    }[state]


@pytest.mark.django_db
class TestEnforceWorkPoolConcurrencyLimits:
    @pytest.mark.parametrize(
        ("pool_limit", "queue_limit", "others", "status", "stored"),
        [
            # No limits: any number of active runs.
            (None, None, [("default", "Running")] * 3, "ACCEPT", "Pending"),
            # The pool's limit counts Pending, Running and Cancelling runs of every queue.
            (2, None, [("default", "Running")], "ACCEPT", "Pending"),
            (2, None, [("default", "Running"), ("other", "Pending")], "WAIT", "Scheduled"),
            (2, None, [("other", "Cancelling"), ("other", "Running")], "WAIT", "Scheduled"),
            (1, None, [("default", "Completed"), ("default", "Cancelled")], "ACCEPT", "Pending"),
            (0, None, [], "WAIT", "Scheduled"),
            # The queue's limit counts only its own runs.
            (None, 1, [("other", "Running"), ("other", "Running")], "ACCEPT", "Pending"),
            (None, 1, [("default", "Running")], "WAIT", "Scheduled"),
            # Runs naming no queue, or an unknown one, are the default queue's.
            (None, 1, [(None, "Running")], "WAIT", "Scheduled"),
            (None, 1, [("gone", "Pending")], "WAIT", "Scheduled"),
            (None, 2, [("gone", "Pending")], "ACCEPT", "Pending"),
            # Both limits: the tighter one decides.
            (5, 1, [("default", "Running")], "WAIT", "Scheduled"),
            (1, 5, [("other", "Running")], "WAIT", "Scheduled"),
        ],
    )
    def test_a_claim_over_a_limit_waits(self, flow, pool_limit, queue_limit, others, status, stored):
        """Each row: limits, the pool's other runs (queue, state), and what claiming a default-queue run gets."""
        pool = work_pool_create(name="local", concurrency_limit=pool_limit)
        work_queue_create(pool=pool, name="other")
        if queue_limit is not None:
            pool.queues.filter(name="default").update(concurrency_limit=queue_limit)
        for queue, state in others:
            walk(scheduled_run(flow, work_queue_name=queue), *_road(state))
        run = scheduled_run(flow)

        result = check_proposal(run, Pending(), status, stored)

        if status == "WAIT":
            assert result.delay_seconds > 0
            assert "concurrency limit" in result.reason

    def test_the_reason_names_the_limit(self, flow):
        """A user seeing runs wait must be told which limit holds them."""
        pool = work_pool_create(name="local")
        pool.queues.filter(name="default").update(concurrency_limit=1)
        walk(scheduled_run(flow), Pending())

        result = check_proposal(scheduled_run(flow), Pending(), "WAIT", "Scheduled")

        assert result.reason == "work queue 'default' of pool 'local' is at its concurrency limit (1 of 1 runs active)"
        work_pool_update(pool=pool, values={"concurrency_limit": 1})
        result = check_proposal(scheduled_run(flow), Pending(), "WAIT", "Scheduled")
        assert result.reason == "work pool 'local' is at its concurrency limit (1 of 1 runs active)"

    def test_runs_of_other_pools_and_of_no_pool_do_not_count(self, flow):
        """Limits are per pool: a busy pool next door must not hold this one back."""
        work_pool_create(name="local", concurrency_limit=1)
        work_pool_create(name="busy")
        walk(scheduled_run(flow, pool="busy"), Pending())
        walk(scheduled_run(flow, pool=None), Pending())

        check_proposal(scheduled_run(flow), Pending(), "ACCEPT", "Pending")

    def test_a_paused_pool_does_not_refuse_a_claim(self, flow):
        """Pausing stops the poll handing runs out; a worker already holding a run may still claim it."""
        work_pool_create(name="local", concurrency_limit=1, paused=True)

        check_proposal(scheduled_run(flow), Pending(), "ACCEPT", "Pending")

    def test_a_run_of_a_pool_that_does_not_exist_is_not_limited(self, flow):
        """A run may name a pool deleted since: nothing limits it."""
        check_proposal(scheduled_run(flow, pool="deleted"), Pending(), "ACCEPT", "Pending")

    def test_only_the_claim_is_guarded(self, flow):
        """Runs already active move on (Running, final states) whatever the limit."""
        pool = work_pool_create(name="local")
        run = walk(scheduled_run(flow), Pending())
        walk(scheduled_run(flow), Pending())
        work_pool_update(pool=pool, values={"concurrency_limit": 1})

        check_proposal(run, Running(), "ACCEPT", "Running")


@pytest.mark.django_db(transaction=True)
def test_ten_simultaneous_claims_under_a_limit_of_two_accept_exactly_two(flow):
    """Ten workers claiming ten runs of a pool limited to two at the same moment: two win, eight wait."""
    work_pool_create(name="local", concurrency_limit=2)
    runs = [scheduled_run(flow) for _ in range(10)]

    results, errors = run_in_threads(
        len(runs), lambda index: engine.propose_state(kind=engine.FLOW_RUN, run_id=runs[index].id, state=Pending())
    )

    assert errors == []
    assert Counter(result.status.value for result in results) == {"ACCEPT": 2, "WAIT": 8}
    for run in runs:
        run.refresh_from_db()
    assert Counter(run.state_type for run in runs) == {"PENDING": 2, "SCHEDULED": 8}
