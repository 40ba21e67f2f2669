"""The server services of work pools, on real rows: `zombies` (runs whose worker went silent are Crashed, or
retried) and `cancellation_cleanup` (cancellations nobody will finish, and the children of cancelled runs)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.server_services.services import service_run
from apps.work_pools.models import Worker
from apps.work_pools.selectors import flow_runs_due
from apps.work_pools.services import flow_runs_crash_zombies, flow_runs_finish_cancellations, worker_heartbeat
from orchestrator.states import Cancelled, Cancelling, Completed, Pending, Running
from tests.orchestration.helpers import flow_run_in, history_names, task_run_in, walk
from tests.work_pools.conftest import scheduled_run

pytestmark = pytest.mark.django_db

LATER = timedelta(seconds=60)  # past the default heartbeat timeout of 30 seconds


def claimed(flow, *, worker: str | None = "w1", running: bool = True, **kwargs):
    """A run of pool `local` claimed by `worker` (recorded on the run, as the worker does), optionally started."""
    run = walk(scheduled_run(flow, **kwargs), Pending(), *([Running()] if running else []))
    if worker:
        run.worker_name = worker
        run.save(update_fields=["worker_name"])
    return run


def silence(pool, worker: str, seconds: float = 60) -> None:
    Worker.objects.filter(pool=pool, name=worker).update(last_heartbeat_at=timezone.now() - timedelta(seconds=seconds))


class TestZombies:
    def test_runs_of_a_silent_worker_are_crashed_naming_it(self, flow, pool):
        """A worker killed with its machine leaves Running runs behind: they must end, and say why."""
        worker_heartbeat(pool=pool, name="w1")
        running = claimed(flow)
        pending = claimed(flow, running=False)
        silence(pool, "w1")

        assert flow_runs_crash_zombies() == 2

        for run in (running, pending):
            run.refresh_from_db()
            assert run.state_name == "Crashed"
            assert run.state_message.startswith("worker 'w1' stopped heartbeating at ")
        assert flow_runs_crash_zombies() == 0

    def test_runs_of_a_live_worker_and_of_no_pool_are_left_alone(self, flow, pool):
        """A worker heartbeating within the timeout is alive, however long its runs take."""
        worker_heartbeat(pool=pool, name="w1")
        alive = claimed(flow)
        outside = walk(scheduled_run(flow, pool=None), Pending(), Running())

        assert flow_runs_crash_zombies() == 0

        alive.refresh_from_db()
        outside.refresh_from_db()
        assert (alive.state_name, outside.state_name) == ("Running", "Running")

    def test_a_run_of_a_worker_the_server_never_heard_of_is_crashed(self, flow, pool):
        """A worker name with no heartbeat at all (its row deleted with a recreated pool) cannot keep a run."""
        run = claimed(flow, worker="ghost")

        assert flow_runs_crash_zombies() == 1

        run.refresh_from_db()
        assert run.state_name == "Crashed" and "'ghost'" in run.state_message

    def test_a_claimed_run_no_worker_recorded_itself_on_is_crashed_after_the_timeout(self, flow, pool):
        """A claim whose worker died before starting anything must not stay Pending forever."""
        pending = claimed(flow, worker=None, running=False)
        running = claimed(flow, worker=None)

        assert flow_runs_crash_zombies() == 0
        assert flow_runs_crash_zombies(now=timezone.now() + LATER) == 1

        pending.refresh_from_db()
        running.refresh_from_db()
        assert pending.state_name == "Crashed"
        assert pending.state_message == "no worker recorded itself on the run within 30 seconds of its claim"
        assert running.state_name == "Running"  # executed by something that does not heartbeat: not judged

    def test_a_crashed_run_with_retries_left_is_retried_and_polled_again(self, flow, pool):
        """A flow with retries survives its worker's death: the retry goes back to the pool for another worker."""
        worker_heartbeat(pool=pool, name="w1")
        run = claimed(flow, empirical_policy={"retries": 1})
        silence(pool, "w1")

        assert flow_runs_crash_zombies() == 1

        run.refresh_from_db()
        assert history_names(run)[-1] == "AwaitingRetry"
        assert "stopped heartbeating" in run.state_message
        assert [due.id for due in flow_runs_due(pool=pool, before=timezone.now() + timedelta(seconds=1))] == [run.id]

    def test_the_timeout_is_a_setting(self, flow, pool, settings):
        """Operators with slow networks lengthen the timeout instead of losing runs."""
        settings.ORCHESTRATOR_WORKER_HEARTBEAT_TIMEOUT_SECONDS = 120
        worker_heartbeat(pool=pool, name="w1")
        run = claimed(flow)
        silence(pool, "w1", seconds=60)

        assert flow_runs_crash_zombies() == 0
        assert Worker.objects.get(name="w1").status == "online"
        silence(pool, "w1", seconds=121)
        assert Worker.objects.get(name="w1").status == "offline"
        assert flow_runs_crash_zombies() == 1
        run.refresh_from_db()
        assert run.state_name == "Crashed"

    def test_the_service_runs_by_its_registered_name(self, flow, pool):
        """`orchestrator server services run zombies` and Beat call it by that name."""
        claimed(flow, worker="ghost")

        record = service_run(name="zombies")

        assert (record.error, record.result) == (None, 1)


class TestCancellationCleanup:
    def test_a_cancelling_run_of_a_silent_worker_is_cancelled(self, flow, pool):
        """No worker is left to stop it, so nothing else would ever end it."""
        worker_heartbeat(pool=pool, name="w1")
        run = walk(claimed(flow), Cancelling())
        other = walk(claimed(flow, worker="w2"), Cancelling())
        worker_heartbeat(pool=pool, name="w2")
        silence(pool, "w1")

        assert flow_runs_finish_cancellations()["flow_runs"] == 1

        run.refresh_from_db()
        other.refresh_from_db()
        assert run.state_name == "Cancelled"
        assert run.state_message.startswith("Cancelled: worker 'w1' stopped heartbeating at ")
        assert other.state_name == "Cancelling"  # its worker is alive and will stop it

    def test_a_cancelling_run_without_a_worker(self, flow, pool):
        """A run of no pool has nobody to stop it: cancelled at once. A pool's run gets the heartbeat timeout,
        in case the worker that claimed it has not recorded itself yet."""
        outside = walk(flow_run_in(flow, "Running"), Cancelling())
        in_pool = walk(claimed(flow, worker=None), Cancelling())

        assert flow_runs_finish_cancellations()["flow_runs"] == 1
        outside.refresh_from_db()
        in_pool.refresh_from_db()
        assert (outside.state_name, in_pool.state_name) == ("Cancelled", "Cancelling")

        assert flow_runs_finish_cancellations(now=timezone.now() + LATER)["flow_runs"] == 1
        in_pool.refresh_from_db()
        assert in_pool.state_name == "Cancelled"

    def test_the_unfinished_children_of_a_cancelled_run_are_cancelled(self, flow):
        """A cancelled flow run must not leave task runs or subflows looking as if they were still running."""
        parent = flow_run_in(flow, "Running")
        running_task = task_run_in(parent, "Running", task_key="a")
        pending_task = task_run_in(parent, "Pending", task_key="b")
        done_task = task_run_in(parent, "Completed", task_key="c")
        subflow_task = task_run_in(parent, "Running", task_key="sub")
        subflow = flow_run_in(flow, "Running", parent_task_run=subflow_task)
        subflow_child = task_run_in(subflow, "Running", task_key="inner")
        walk(parent, Cancelling())
        walk(parent, Cancelled())

        counts = flow_runs_finish_cancellations()

        assert counts == {"flow_runs": 0, "task_runs": 4, "subflow_runs": 1}
        for run in (running_task, pending_task, subflow_task, subflow, subflow_child):
            run.refresh_from_db()
            assert run.state_name == "Cancelled", run
        done_task.refresh_from_db()
        assert done_task.state_name == "Completed"
        assert flow_runs_finish_cancellations() == {"flow_runs": 0, "task_runs": 0, "subflow_runs": 0}

    def test_children_of_runs_that_are_not_cancelled_are_left_alone(self, flow):
        """Only a cancelled parent ends its children; a completed or running one does not."""
        running = flow_run_in(flow, "Running")
        task = task_run_in(running, "Running")
        finished = walk(flow_run_in(flow, "Running"), Completed())
        late_task = task_run_in(finished, "Pending", task_key="late")

        assert flow_runs_finish_cancellations() == {"flow_runs": 0, "task_runs": 0, "subflow_runs": 0}
        task.refresh_from_db()
        late_task.refresh_from_db()
        assert (task.state_name, late_task.state_name) == ("Running", "Pending")

    def test_the_service_runs_by_its_registered_name(self, flow):
        record = service_run(name="cancellation_cleanup")

        assert (record.error, record.result) == (None, {"flow_runs": 0, "task_runs": 0, "subflow_runs": 0})
