"""The process worker end to end: a real server, real `orchestrator worker start` processes, flow files on disk,
runs made through the API. Each test says which promise of docs/workers.md it holds the worker to."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.cli import run_orchestrator
from tests.workers.conftest import ACTIVE_TYPES, Cluster, pid_of, process_gone, wait_until

pytestmark = pytest.mark.e2e


def test_two_workers_run_each_of_100_runs_exactly_once(workers: Cluster, tmp_path: Path) -> None:
    """Two workers polling one pool race for every run: the engine's claim gives each run to exactly one."""
    log = tmp_path / "executions.log"
    pool = workers.pool()
    deployment = workers.deployment(pool, "flows.py:record")
    first = workers.start_worker("--pool", pool, "--limit", "4")
    second = workers.start_worker("--pool", pool, "--limit", "4")
    run_ids = [workers.create_run(deployment, log=str(log))["id"] for _ in range(100)]
    runs = workers.wait_final(run_ids, timeout=120)
    assert {run["state_name"] for run in runs} == {"Completed"}, [r["state"] for r in runs]
    executed = log.read_text().split()
    assert sorted(executed) == sorted(run_ids)  # each run once: none twice, none missing
    by_worker = {run["worker_name"] for run in runs}
    assert len(by_worker) == 2, by_worker  # both took part
    for worker in (first, second):
        assert worker.process.poll() is None, worker.output()


def test_a_task_cache_hits_across_runs_of_a_deployment(workers: Cluster) -> None:
    """Each run's flow file is loaded afresh in a new process: the task's key, and so its cache key, must not
    depend on how the module was loaded, or a cached task never hits for runs a worker starts."""
    pool = workers.pool()
    deployment = workers.deployment(pool, "flows.py:cached_square")
    workers.start_worker("--pool", pool)
    first = workers.create_run(deployment, x=7)
    assert workers.wait_final([first["id"]], timeout=30)[0]["state_name"] == "Completed"
    second = workers.create_run(deployment, x=7)
    assert workers.wait_final([second["id"]], timeout=30)[0]["state_name"] == "Completed"
    task_runs = [
        workers.call("GET", "task_runs/", params={"flow_run": run["id"]})["results"] for run in (first, second)
    ]
    assert [runs[0]["state_name"] for runs in task_runs] == ["Completed", "Cached"], task_runs
    assert task_runs[0][0]["task_key"] == task_runs[1][0]["task_key"] == "flows.square"


def test_a_run_whose_worker_is_killed_ends_crashed_and_leaves_no_process(workers: Cluster) -> None:
    """kill -9 of a worker: its run's process dies with it, and the zombies service crashes the run once
    the worker stops heartbeating."""
    pool = workers.pool()
    run = workers.create_run(workers.deployment(pool, "flows.py:nap"), seconds=60)
    worker = workers.start_worker("--pool", pool)
    running = workers.wait_for([run["id"]], lambda r: r["state_type"] == "RUNNING" and r["infrastructure_pid"])[0]
    child = pid_of(running)
    assert not process_gone(child)
    worker.process.kill()
    worker.process.wait()
    wait_until(lambda: process_gone(child), 5, f"the run's process {child} outlived its killed worker")
    time.sleep(3.5)  # the server's heartbeat timeout in these tests is 3 s
    result = run_orchestrator("server", "services", "run", "zombies", "--once", env=workers.server.env)
    assert result.returncode == 0, result.stdout + result.stderr
    crashed = workers.wait_final([run["id"]], timeout=10)[0]
    assert crashed["state_name"] == "Crashed", crashed["state"]
    assert running["worker_name"] in crashed["state"]["message"]


def test_cancelling_a_running_run_kills_its_process_and_ends_it_cancelled(workers: Cluster) -> None:
    """A cancelled run must stop: the worker learns of it from its heartbeat, kills the process group and ends the
    run Cancelled, well within 10 s."""
    pool = workers.pool()
    run = workers.create_run(workers.deployment(pool, "flows.py:nap"), seconds=60)
    worker = workers.start_worker("--pool", pool)
    running = workers.wait_for([run["id"]], lambda r: r["state_type"] == "RUNNING" and r["infrastructure_pid"])[0]
    child = pid_of(running)
    asked = time.monotonic()
    result = run_orchestrator("flow-run", "cancel", run["id"], env=workers.worker_env())
    assert result.returncode == 0, result.stdout + result.stderr
    cancelled = workers.wait_final([run["id"]], timeout=10)[0]
    assert cancelled["state_name"] == "Cancelled", cancelled["state"]
    assert time.monotonic() - asked < 10
    wait_until(lambda: process_gone(child), 2, f"the cancelled run's process {child} still runs")
    assert "Cancelling" in worker.output() and worker.process.poll() is None


def test_a_cancelled_run_that_ignores_sigterm_is_killed_with_what_it_started(workers: Cluster, tmp_path: Path) -> None:
    """SIGTERM is a request; after the grace period the run's whole process group gets SIGKILL."""
    pool = workers.pool()
    pid_file = tmp_path / "helper.pid"
    run = workers.create_run(workers.deployment(pool, "flows.py:stubborn"), pid_file=str(pid_file))
    workers.start_worker("--pool", pool)
    running = workers.wait_for([run["id"]], lambda r: r["state_type"] == "RUNNING" and r["infrastructure_pid"])[0]
    wait_until(pid_file.exists, 10, "the flow never started its helper process")
    time.sleep(0.1)
    helper = int(pid_file.read_text())
    answer = workers.call("POST", f"flow_runs/{run['id']}/set_state/", json={"state": {"type": "CANCELLING"}})
    assert answer["status"] == "ACCEPT", answer
    cancelled = workers.wait_final([run["id"]], timeout=10)[0]
    assert cancelled["state_name"] == "Cancelled"
    assert "SIGKILL" in cancelled["state"]["message"]  # it did not stop on SIGTERM
    assert process_gone(pid_of(running))
    wait_until(lambda: process_gone(helper), 2, f"the run's helper process {helper} still runs")


def test_a_run_due_soon_is_held_and_claimed_at_its_time_not_at_the_next_poll(workers: Cluster) -> None:
    """Prefetching lets scheduled runs start on time whatever the poll interval (here 10 s)."""
    pool = workers.pool()
    deployment = workers.deployment(pool, "flows.py:nap")
    scheduled = datetime.now(UTC) + timedelta(seconds=4)
    run = workers.call(
        "POST",
        f"deployments/{deployment}/create_flow_run/",
        json={"parameters": {"seconds": 0}, "scheduled_time": scheduled.isoformat()},
    )
    workers.start_worker(
        "--pool", pool, ORCHESTRATOR_WORKER_POLL_SECONDS="10", ORCHESTRATOR_WORKER_PREFETCH_SECONDS="30"
    )
    assert workers.run(run["id"])["state_type"] == "SCHEDULED"
    assert workers.wait_final([run["id"]], timeout=15)[0]["state_name"] == "Completed"
    claimed = next(state for state in workers.states(run["id"]) if state["type"] == "PENDING")
    lateness = (datetime.fromisoformat(claimed["timestamp"]) - scheduled).total_seconds()
    assert 0 <= lateness < 0.5, lateness


def test_a_paused_pool_and_a_paused_queue_give_no_runs_until_resumed(workers: Cluster) -> None:
    """Pausing is how operators hold work back: nothing of a paused pool or queue starts, and resuming releases
    it without restarting the worker."""
    pool = workers.pool(paused=True, queues={"side": 1})
    pool_run = workers.create_run(workers.deployment(pool, "flows.py:nap"), seconds=0)
    workers.call("PATCH", f"work_pools/{pool}/queues/side/", json={"paused": True})
    queue_run = workers.create_run(workers.deployment(pool, "flows.py:nap", queue="side"), seconds=0)
    workers.start_worker("--pool", pool)
    time.sleep(1.5)  # seven polls
    assert {workers.run(run_id)["state_type"] for run_id in (pool_run["id"], queue_run["id"])} == {"SCHEDULED"}
    workers.call("PATCH", f"work_pools/{pool}/", json={"paused": False})
    assert workers.wait_final([pool_run["id"]], timeout=10)[0]["state_name"] == "Completed"
    time.sleep(1.0)
    assert workers.run(queue_run["id"])["state_type"] == "SCHEDULED"  # its queue is still paused
    workers.call("PATCH", f"work_pools/{pool}/queues/side/", json={"paused": False})
    assert workers.wait_final([queue_run["id"]], timeout=10)[0]["state_name"] == "Completed"


def test_a_pool_concurrency_limit_of_two_never_shows_three_active_runs(workers: Cluster) -> None:
    """Two workers with free slots still never take the pool past its limit: over-limit claims wait."""
    pool = workers.pool(concurrency_limit=2)
    deployment = workers.deployment(pool, "flows.py:nap")
    run_ids = [workers.create_run(deployment, seconds=1.0)["id"] for _ in range(6)]
    workers.start_worker("--pool", pool)
    workers.start_worker("--pool", pool)
    most = 0
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        listed = workers.call("GET", "flow_runs/", params={"work_pool": pool, "limit": 50})["results"]
        most = max(most, sum(1 for run in listed if run["state_type"] in ACTIVE_TYPES))
        if sum(1 for run in listed if run["state_name"] == "Completed") == 6:
            break
        time.sleep(0.05)
    runs = workers.wait_final(run_ids, timeout=5)
    assert {run["state_name"] for run in runs} == {"Completed"}
    assert most == 2, f"at most {most} active runs were seen"


def test_runs_of_a_higher_priority_queue_start_first(workers: Cluster) -> None:
    """Queue priority decides which waiting run a busy worker takes next."""
    pool = workers.pool(queues={"urgent": 1, "later": 2})
    later = workers.deployment(pool, "flows.py:nap", queue="later")
    urgent = workers.deployment(pool, "flows.py:nap", queue="urgent")
    later_ids = [workers.create_run(later, seconds=0.1)["id"] for _ in range(3)]
    urgent_ids = [workers.create_run(urgent, seconds=0.1)["id"] for _ in range(3)]
    workers.start_worker("--pool", pool, "--limit", "1")
    runs = {run["id"]: run for run in workers.wait_final(later_ids + urgent_ids, timeout=30)}
    assert {run["state_name"] for run in runs.values()} == {"Completed"}
    last_urgent = max(runs[run_id]["start_time"] for run_id in urgent_ids)
    first_later = min(runs[run_id]["start_time"] for run_id in later_ids)
    assert last_urgent < first_later


def test_a_missing_or_broken_entrypoint_fails_the_run_and_the_worker_goes_on(workers: Cluster) -> None:
    """Bad code is the user's to fix: the run says what is wrong, and the worker keeps serving the good runs."""
    pool = workers.pool()
    (workers.flows_dir / "broken.py").write_text("from orchestrator import flow\n\n@flow\ndef broken(:\n    pass\n")
    missing = workers.create_run(workers.deployment(pool, "gone.py:etl"))
    broken = workers.create_run(workers.deployment(pool, "broken.py:broken"))
    no_function = workers.create_run(workers.deployment(pool, "flows.py:absent"))
    worker = workers.start_worker("--pool", pool, "--limit", "1")
    failed = {run["id"]: run for run in workers.wait_final([missing["id"], broken["id"], no_function["id"]])}
    assert {run["state_name"] for run in failed.values()} == {"Failed"}
    assert failed[missing["id"]]["state"]["message"].startswith(
        "cannot load flow from 'gone.py:etl': FileNotFoundError: no such file"
    )
    assert failed[broken["id"]]["state"]["message"].startswith(
        "cannot load flow from 'broken.py:broken': SyntaxError: invalid syntax (broken.py, line 4)"
    )
    assert "AttributeError: flows.py has no 'absent'" in failed[no_function["id"]]["state"]["message"]
    good = workers.create_run(workers.deployment(pool, "flows.py:nap"), seconds=0)
    assert workers.wait_final([good["id"]])[0]["state_name"] == "Completed"
    assert worker.process.poll() is None


def test_a_process_that_dies_without_a_final_state_is_crashed_with_its_exit_code(workers: Cluster) -> None:
    """A segfault or os._exit leaves the run Running; the worker sees the exit and says how the process ended."""
    pool = workers.pool()
    run = workers.create_run(workers.deployment(pool, "flows.py:die"), code=7)
    workers.start_worker("--pool", pool)
    crashed = workers.wait_final([run["id"]])[0]
    assert crashed["state_name"] == "Crashed"
    assert crashed["state"]["message"] == "the flow run's process exited with code 7"
    inspected = run_orchestrator("flow-run", "inspect", run["id"], env=workers.worker_env())
    assert inspected.returncode == 0, inspected.stderr
    assert crashed["worker_name"] in inspected.stdout and crashed["infrastructure_pid"] in inspected.stdout


def test_sigterm_lets_the_active_run_finish_then_the_worker_exits_0(workers: Cluster) -> None:
    """Stopping a worker for a deploy must not lose the run in progress."""
    pool = workers.pool()
    run = workers.create_run(workers.deployment(pool, "flows.py:nap"), seconds=2)
    worker = workers.start_worker("--pool", pool, verb="agent")
    workers.wait_for([run["id"]], lambda r: r["state_type"] == "RUNNING")
    worker.process.send_signal(signal.SIGTERM)
    worker.wait_for_output("Stopping: waiting for 1 flow run(s)")
    later = workers.create_run(workers.deployment(pool, "flows.py:nap"), seconds=0)
    assert worker.stop(None, timeout=15) == 0
    finished = workers.run(run["id"])
    assert finished["state_name"] == "Completed", (finished["state"], worker.output())
    assert workers.run(later["id"])["state_type"] == "SCHEDULED"  # a stopping worker claims nothing new


def test_a_second_signal_kills_the_runs_and_marks_them_crashed(workers: Cluster) -> None:
    """Ctrl+C twice means now: the runs are killed, and recorded as Crashed rather than left Running."""
    pool = workers.pool()
    run = workers.create_run(workers.deployment(pool, "flows.py:nap"), seconds=60)
    worker = workers.start_worker("--pool", pool)
    running = workers.wait_for([run["id"]], lambda r: r["state_type"] == "RUNNING" and r["infrastructure_pid"])[0]
    worker.process.send_signal(signal.SIGINT)
    worker.wait_for_output("Stopping")
    assert worker.stop(signal.SIGINT, timeout=15) == 0
    crashed = workers.run(run["id"])
    assert crashed["state_name"] == "Crashed"
    assert "was stopped while the run was running" in crashed["state"]["message"]
    assert process_gone(pid_of(running))


def test_a_worker_whose_pool_is_deleted_says_so_and_exits_non_zero(workers: Cluster) -> None:
    """It used to poll a 404 every second for ever; a supervisor (systemd, k8s) must see it stop."""
    pool = workers.pool()
    worker = workers.start_worker("--pool", pool)
    worker.wait_for_output("started")
    workers.call("DELETE", f"work_pools/{pool}/")
    code = worker.stop(sig=None, timeout=20)
    assert code == 1, worker.output()
    assert f"work pool {pool!r} no longer exists" in worker.output()


def test_worker_start_errors_are_one_line(workers: Cluster) -> None:
    """A worker that cannot work says why in one line and exits non-zero: no API URL, an unknown pool or queue."""
    env = workers.worker_env()
    unknown = run_orchestrator("worker", "start", "--pool", "no-such-pool", env=env)
    assert unknown.returncode != 0
    assert unknown.stderr.strip() == "error: work pool 'no-such-pool' not found"
    pool = workers.pool()
    no_queue = run_orchestrator("worker", "start", "--pool", pool, "--queue", "nope", env=env)
    assert no_queue.returncode != 0
    assert no_queue.stderr.strip() == f"error: work queue 'nope' not found in work pool '{pool}'"
    del env["ORCHESTRATOR_API_URL"]
    no_url = run_orchestrator("worker", "start", "--pool", "anything", env=env)
    assert no_url.returncode != 0
    assert no_url.stderr.startswith("error: ORCHESTRATOR_API_URL is not set")
    assert len(no_url.stderr.strip().splitlines()) == 1
