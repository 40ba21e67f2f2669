"""The celery pool type's dispatch, on real rows: which state changes the `celery_dispatch` event consumer sends
to a run's Celery queue (once they committed), what the `celery_dispatch` service sends, and what the task does
before it runs anything.

The tests drive the consumer over the committed event stream (so those tests commit: transactional database);
its sends and the service's go to the test's embedded broker.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from apps.deployments.services import mark_late_runs
from apps.events.consumers import consumer_get
from apps.events.models import ConsumerCursor
from apps.flows.models import Flow
from apps.flows.services import flow_get_or_create
from apps.runs.models import FlowRun
from apps.work_pools.dispatch import flow_runs_dispatch_due
from apps.work_pools.models import WorkPool
from apps.work_pools.services import work_pool_create, work_pool_update, work_queue_create, work_queue_update
from orchestrator.states import Crashed, Failed, Pending, Running
from orchestrator.workers.celery_pool import execute_flow_run
from tests.events.support import drive
from tests.orchestration.helpers import propose, walk
from tests.work_pools.conftest import scheduled_run

pytestmark = pytest.mark.django_db

HORIZON = timedelta(seconds=settings.ORCHESTRATOR_CELERY_DISPATCH_HORIZON_SECONDS)
REDISPATCH = timedelta(seconds=settings.ORCHESTRATOR_CELERY_REDISPATCH_SECONDS)


@pytest.fixture
def flow(db) -> Flow:
    return flow_get_or_create(name="celery-dispatch-tests")[0]


@pytest.fixture
def pool(db) -> WorkPool:
    """A process pool named `local` (the default of `scheduled_run`)."""
    return work_pool_create(name="local")


@pytest.fixture
def celery_pool(db) -> WorkPool:
    return work_pool_create(name=f"celery-{uuid.uuid4().hex[:8]}", type="celery")


def run_in(flow, pool: WorkPool | None, **kwargs) -> FlowRun:
    return scheduled_run(flow, pool.name if pool else None, **kwargs)


def drive_dispatch_consumer() -> int:
    """Run the celery_dispatch consumer over every committed event after its cursor; how many runs it sent."""
    return sum(drive(consumer_get("celery_dispatch")))


@pytest.mark.django_db(transaction=True)
class TestSentWhenScheduled:
    def test_a_run_due_now_is_sent_once_by_the_consumer(self, flow, celery_pool):
        """The fast path: the run's message is published once the change that made it Scheduled has committed,
        and handling the same events again (at least once) sends nothing more."""
        run = run_in(flow, celery_pool)
        assert drive_dispatch_consumer() == 1
        run.refresh_from_db()
        assert run.dispatched_at is not None
        assert drive_dispatch_consumer() == 0
        ConsumerCursor.objects.filter(name="celery_dispatch").delete()  # the stream is read again from its start
        assert drive_dispatch_consumer() == 0

    def test_runs_of_process_pools_and_of_no_pool_are_not_sent(self, flow, pool):
        """Only celery pools are pushed; process pools are polled, and runs of no pool belong to no worker."""
        runs = [run_in(flow, pool), run_in(flow, None)]
        assert drive_dispatch_consumer() == 0
        assert [FlowRun.objects.get(pk=run.pk).dispatched_at for run in runs] == [None, None]

    def test_a_run_of_a_paused_pool_is_left_for_the_service(self, flow, celery_pool):
        """A paused pool's runs wait for the resume; the service sends them then."""
        work_pool_update(pool=celery_pool, values={"paused": True})
        run = run_in(flow, celery_pool)
        assert drive_dispatch_consumer() == 0
        work_pool_update(pool=celery_pool, values={"paused": False})
        assert flow_runs_dispatch_due() == 1
        run.refresh_from_db()
        assert run.dispatched_at is not None

    def test_a_run_due_beyond_the_horizon_is_sent_by_the_service_once_it_comes_within_it(self, flow, celery_pool):
        """ETAs stay short (Redis redelivers old unacknowledged messages): far runs wait for celery_dispatch."""
        later = HORIZON + timedelta(minutes=5)
        run = run_in(flow, celery_pool, seconds=later.total_seconds())
        assert drive_dispatch_consumer() == 0
        run.refresh_from_db()
        assert run.dispatched_at is None
        now = timezone.now()
        assert flow_runs_dispatch_due(now=now) == 0
        assert flow_runs_dispatch_due(now=now + timedelta(minutes=6)) == 1
        assert flow_runs_dispatch_due(now=now + timedelta(minutes=6, seconds=10)) == 0  # sent: not again
        run.refresh_from_db()
        assert run.dispatched_at == now + timedelta(minutes=6)

    def test_marking_a_run_late_does_not_send_it_again(self, flow, celery_pool):
        """Late is still Scheduled, at the same time: one message is enough."""
        run = run_in(flow, celery_pool, seconds=-60)
        assert drive_dispatch_consumer() == 1
        sent_at = FlowRun.objects.get(pk=run.pk).dispatched_at
        assert mark_late_runs() == 1
        assert drive_dispatch_consumer() == 0
        run.refresh_from_db()
        assert run.state_name == "Late" and run.dispatched_at == sent_at

    def test_a_retry_its_executor_follows_is_marked_but_not_sent(self, flow, celery_pool):
        """A failed attempt with retries left is retried by the process already running it: a second message
        would start a second execution. The service sends it only if it is still Scheduled well after its time."""
        run = run_in(flow, celery_pool, empirical_policy={"retries": 1, "retry_delay": 5})
        assert drive_dispatch_consumer() == 1  # its first scheduling
        run = walk(run, Pending(), Running())
        result = propose(run, Failed(message="boom"))
        run.refresh_from_db()
        assert result.state.name == "AwaitingRetry"
        assert drive_dispatch_consumer() == 0 and run.dispatched_at == run.state_timestamp
        retry_at = run.next_scheduled_start_time
        assert flow_runs_dispatch_due(now=retry_at + timedelta(seconds=1)) == 0
        assert flow_runs_dispatch_due(now=retry_at + REDISPATCH + timedelta(seconds=1)) == 1  # its executor died

    def test_a_crashed_run_with_retries_left_is_sent_again(self, flow, celery_pool):
        """A run whose process or worker died is retried by a new delivery: nobody else will run it."""
        run = run_in(flow, celery_pool, empirical_policy={"retries": 1})
        assert drive_dispatch_consumer() == 1
        run = walk(run, Pending(), Running())
        result = propose(run, Crashed(message="the flow run's process was killed by signal SIGKILL"))
        assert result.state.name == "AwaitingRetry"
        assert drive_dispatch_consumer() == 1


class TestService:
    def test_runs_of_a_paused_pool_or_queue_are_sent_after_the_resume(self, flow, celery_pool):
        """A task that found the pool paused left its run unsent; the service must send it once resumed."""
        work_queue_create(pool=celery_pool, name="slow")
        in_default = run_in(flow, celery_pool)
        in_slow = run_in(flow, celery_pool, work_queue_name="slow")
        FlowRun.objects.filter(pk__in=[in_default.pk, in_slow.pk]).update(dispatched_at=None)  # as a task leaves it

        work_pool_update(pool=celery_pool, values={"paused": True})
        assert flow_runs_dispatch_due() == 0
        work_pool_update(pool=celery_pool, values={"paused": False})
        slow = celery_pool.queues.get(name="slow")
        work_queue_update(queue=slow, values={"paused": True})
        assert flow_runs_dispatch_due() == 1  # the default queue's run
        work_queue_update(queue=slow, values={"paused": False})
        assert flow_runs_dispatch_due() == 1
        assert FlowRun.objects.filter(pk__in=[in_default.pk, in_slow.pk], dispatched_at__isnull=True).count() == 0

    def test_a_lost_message_is_sent_again_at_doubling_intervals(self, flow, celery_pool):
        """A run still Scheduled after its time may have lost its message (Redis flushed, a worker killed before
        the ETA); a pool with no worker must not get a message per run every pass, though."""
        now = timezone.now()
        run = run_in(flow, celery_pool, seconds=-1)
        FlowRun.objects.filter(pk=run.pk).update(dispatched_at=now - timedelta(seconds=1))
        step = REDISPATCH.total_seconds()
        assert flow_runs_dispatch_due(now=now + timedelta(seconds=step / 2)) == 0
        assert flow_runs_dispatch_due(now=now + timedelta(seconds=step + 1)) == 1  # sent again...
        assert flow_runs_dispatch_due(now=now + timedelta(seconds=step * 1.5 + 1)) == 0
        assert flow_runs_dispatch_due(now=now + timedelta(seconds=step * 2 + 3)) == 1  # ...then after twice as long
        assert flow_runs_dispatch_due(now=now + timedelta(seconds=step * 3 + 3)) == 0
        assert flow_runs_dispatch_due(now=now + timedelta(seconds=step * 4 + 10)) == 1

    def test_claimed_runs_are_never_sent(self, flow, celery_pool):
        """Only Scheduled runs are sent: a claimed one has a worker already."""
        run = walk(run_in(flow, celery_pool, seconds=-120), Pending())
        FlowRun.objects.filter(pk=run.pk).update(dispatched_at=None)
        assert flow_runs_dispatch_due() == 0


class TestTaskBeforeItRunsAnything:
    def test_a_run_that_is_not_scheduled_any_more_is_left_alone(self, flow, celery_pool):
        """A second delivery of the same run changes nothing."""
        run = walk(run_in(flow, celery_pool), Pending())
        outcome = execute_flow_run(flow_run_id=str(run.id), worker_name="celery-1@host")
        assert outcome.retry_in is None and "left alone: it is Pending" in outcome.message
        assert execute_flow_run(flow_run_id="not-a-uuid", worker_name="celery-1@host").retry_in is None

    def test_a_run_of_a_paused_pool_is_left_unsent_for_the_service(self, flow, celery_pool):
        run = run_in(flow, celery_pool)
        work_pool_update(pool=celery_pool, values={"paused": True})
        outcome = execute_flow_run(flow_run_id=str(run.id), worker_name="celery-1@host")
        run.refresh_from_db()
        assert run.state_name == "Scheduled" and run.dispatched_at is None
        assert "is paused" in outcome.message and outcome.retry_in is None

    def test_a_claim_over_the_pool_limit_is_retried_after_the_delay(self, flow, celery_pool):
        """The pool's concurrency limit makes the claim WAIT: the task comes back later and the run stays sent."""
        work_pool_update(pool=celery_pool, values={"concurrency_limit": 1})
        walk(run_in(flow, celery_pool), Pending(), Running())
        waiting = run_in(flow, celery_pool)
        FlowRun.objects.filter(pk=waiting.pk).update(dispatched_at=timezone.now() - timedelta(minutes=5))
        outcome = execute_flow_run(flow_run_id=str(waiting.id), worker_name="celery-1@host")
        waiting.refresh_from_db()
        assert outcome.retry_in is not None and outcome.retry_in > 0
        assert waiting.state_name == "Scheduled"
        assert timezone.now() - waiting.dispatched_at < timedelta(seconds=5)  # its message is alive

    def test_a_run_not_due_yet_is_retried_at_its_time(self, flow, celery_pool):
        run = run_in(flow, celery_pool, seconds=30)
        outcome = execute_flow_run(flow_run_id=str(run.id), worker_name="celery-1@host")
        assert outcome.retry_in is not None and 25 < outcome.retry_in <= 30
        run.refresh_from_db()
        assert run.state_name == "Scheduled"
