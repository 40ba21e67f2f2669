"""Execute one claimed flow run in this process: `python -m orchestrator.workers.execute FLOW_RUN_ID`.

A process worker starts this for each run it claimed (the run is Pending). It reads the run and its deployment
through the API (ORCHESTRATOR_API_URL), loads the flow from the deployment's `path` and `entrypoint`, and runs
it against the existing run exactly as `flow.serve()` does (PENDING -> RUNNING -> final state, logs, hooks).

Exit codes: 0 when the flow ran, whatever its outcome (the engine recorded it); 1 when the flow could not be
loaded (the run is Failed with a message naming the entrypoint and the error); 2 for bad usage. Any other end
(a crash, a signal) leaves the run unfinished, and the worker that started this process proposes Crashed.

On Linux the process asks the kernel for SIGKILL when its parent (the worker) dies, so a worker that is
`kill -9`ed leaves no runs executing behind it; if the worker is already gone it exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

# The worker's pid, so this process can tell whether it is already orphaned.
WORKER_PID_VARIABLE = "ORCHESTRATOR_WORKER_PID"
LOAD_FAILED_EXIT_CODE = 1
USAGE_EXIT_CODE = 2
ORPHANED_EXIT_CODE = 3
PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent: int | None = None) -> None:
    """Ask for SIGKILL when the parent exits (Linux); exit now if the parent that started us (by default the
    worker named by ORCHESTRATOR_WORKER_PID) is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the worker's heartbeat timeout still ends the run
            pass
    if expected_parent is None:
        variable = os.environ.get(WORKER_PID_VARIABLE, "")
        expected_parent = int(variable) if variable.isdigit() else None
    if expected_parent is not None and os.getppid() != expected_parent:
        sys.stderr.write("orchestrator.workers: the worker that started this process is gone; exiting\n")
        os._exit(ORPHANED_EXIT_CODE)


def execute(flow_run_id: str) -> int:
    """Load and run the flow of `flow_run_id`; returns the process's exit code (see the module docstring)."""
    from orchestrator import config
    from orchestrator.client import get_client
    from orchestrator.workers.loading import CodeLocation, FlowLoadError, deployment_flow_load

    if not config.get("ORCHESTRATOR_API_URL"):
        sys.stderr.write("error: ORCHESTRATOR_API_URL is not set; a worker's runs talk to the server\n")
        return USAGE_EXIT_CODE
    client = get_client()
    run = client.read_flow_run(flow_run_id)
    if not run.deployment_id:
        _fail(client, flow_run_id, f"flow run {flow_run_id} has no deployment: nothing says which code to run")
        return LOAD_FAILED_EXIT_CODE
    deployment = client.read_deployment(run.deployment_id)
    try:
        flow, folder = deployment_flow_load(CodeLocation.of(deployment))
    except FlowLoadError as exc:
        _fail(client, flow_run_id, str(exc))
        return LOAD_FAILED_EXIT_CODE
    if folder:
        os.chdir(folder)  # the flow's relative paths mean what they meant where it was deployed
    run_flow(flow, run)
    return 0


def run_flow(flow: Any, run: Any) -> Any:
    """Run `flow` against the existing run (as `Runner._execute` of `flow.serve()` does); returns its final state."""
    import inspect

    from orchestrator.sdk.engine import run_flow_async, run_flow_sync

    parameters = dict(run.parameters)
    if inspect.iscoroutinefunction(flow.fn):
        import asyncio

        return asyncio.run(run_flow_async(flow, (), parameters, return_state=True, flow_run_id=run.id))
    return run_flow_sync(flow, (), parameters, return_state=True, flow_run_id=run.id)


def _fail(client: Any, flow_run_id: str, message: str) -> None:
    from orchestrator.states import Failed

    sys.stderr.write(f"error: {message}\n")
    client.set_flow_run_state(flow_run_id, Failed(message=message))


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m orchestrator.workers.execute FLOW_RUN_ID\n")
        return USAGE_EXIT_CODE
    return execute(args[0])


if __name__ == "__main__":
    sys.exit(main())


def exit_description(code: int) -> str:
    """How a run's process ended, from its exit status (negative: the signal that killed it)."""
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def run_forked_child(body: Callable[[], int]) -> NoReturn:
    """Run the body of a forked run process and leave with its exit code, never returning into the code of the
    process it was forked from (a launcher, a Celery pool process). The run's outcome is recorded by the engine;
    an exception here is the process itself failing: printed, exit code 1. Only this process's exit functions
    run (the body clears the inherited ones)."""
    code = 1
    try:
        code = body()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
