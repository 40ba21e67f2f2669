"""Starting a flow run's process quickly: a fork server next to each process worker.

A fresh `python -m orchestrator.workers.execute RUN_ID` pays ~0.25 s of CPU before its first request (the
interpreter, then importing the SDK, httpx and pydantic, and building an HTTP client). On a small machine
that is both most of a run's pickup latency and a ceiling on how many runs a second a worker can start. So the
worker keeps one launcher process, `python -m orchestrator.workers.launcher FD`, that has imported and warmed
all of that once (without Django, without opening a connection, without starting a thread) and forks a child
per run. Each child is what the per-run subprocess would be: its own session and process group (so the worker
can signal the run and everything it started), SIGKILL when its parent dies (PR_SET_PDEATHSIG), stdin from
/dev/null, the worker's stdout and stderr, and `orchestrator.workers.execute.execute(RUN_ID)` as its body.

Protocol (text lines): the worker writes `RUN_ID` to the launcher's stdin; the launcher answers on the pipe
FD with `started RUN_ID PID` (or `failed RUN_ID MESSAGE`), and `exited PID CODE` when a child ends (CODE is
negative for a signal, as in subprocess). When its stdin closes the launcher waits for its children and exits.
If the worker dies, the launcher dies (PR_SET_PDEATHSIG), and so do the runs.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

from orchestrator.workers.execute import WORKER_PID_VARIABLE, die_with_parent, run_forked_child

STARTED_TIMEOUT_SECONDS = 10.0


class LauncherError(Exception):
    """The launcher did not start a run's process (it is gone, or it answered with an error)."""


# -- the worker's side --------------------------------------------------------------------------------------------
class ForkServer:
    """The worker's handle on its launcher process: start runs, learn of their exits."""

    def __init__(self, env: dict[str, str], on_exit: Callable[[], None]) -> None:
        self.env = env
        self.on_exit = on_exit  # called (from a reader thread) when a child exits or the launcher ends
        self.process: subprocess.Popen | None = None
        self._lock = threading.Condition()
        self._started: dict[str, int | str] = {}
        self._exits: dict[int, int] = {}
        self._reader: threading.Thread | None = None
        # Each start is a generation; one has ended once all its launcher's messages were read.
        self.generation = 0
        self._ended: set[int] = set()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        read_end, write_end = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "orchestrator.workers.launcher", str(write_end)],
                env=self.env,
                stdin=subprocess.PIPE,
                pass_fds=(write_end,),
                start_new_session=True,  # Ctrl+C in the worker's terminal is the worker's to handle
            )
        finally:
            os.close(write_end)
        self._started.clear()
        self.generation += 1
        self._reader = threading.Thread(target=self._read, args=(read_end, self.process, self.generation), daemon=True)
        self._reader.start()

    def ended(self, generation: int) -> bool:
        """Whether the launcher of that generation is gone and every exit it reported has been read."""
        with self._lock:
            return generation in self._ended

    def _read(self, fd: int, process: subprocess.Popen, generation: int) -> None:
        with os.fdopen(fd, "r") as messages:
            for line in messages:
                kind, _, rest = line.rstrip("\n").partition(" ")
                with self._lock:
                    if kind == "started":
                        run_id, _, pid = rest.partition(" ")
                        self._started[run_id] = int(pid)
                    elif kind == "failed":
                        run_id, _, message = rest.partition(" ")
                        self._started[run_id] = message
                    elif kind == "exited":
                        pid, _, code = rest.partition(" ")
                        self._exits[int(pid)] = int(code)
                    self._lock.notify_all()
                if kind == "exited":
                    self.on_exit()
        process.wait()
        with self._lock:
            self._ended.add(generation)
            self._lock.notify_all()
        self.on_exit()

    def launch(self, run_id: str) -> int:
        """Start the process of `run_id`; returns its pid (LauncherError when the launcher cannot)."""
        if not self.alive:
            self.start()
        assert self.process is not None and self.process.stdin is not None
        try:
            self.process.stdin.write(f"{run_id}\n".encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise LauncherError(f"the launcher process is gone ({exc})") from None
        with self._lock:
            answered = self._lock.wait_for(
                lambda: run_id in self._started or not self.alive, timeout=STARTED_TIMEOUT_SECONDS
            )
            answer = self._started.pop(run_id, None)
        if isinstance(answer, int):
            return answer
        if isinstance(answer, str):
            raise LauncherError(answer)
        if not answered:
            raise LauncherError(f"the launcher did not start the run within {STARTED_TIMEOUT_SECONDS:g}s")
        raise LauncherError(f"the launcher process exited with code {self.process.returncode}")

    def exit_code(self, pid: int) -> int | None:
        """The exit code of a child once it has ended (negative: killed by that signal), else None."""
        with self._lock:
            return self._exits.pop(pid, None)

    def close(self, timeout: float = 10.0) -> None:
        """Close the launcher's stdin: it exits once its children have (the worker waits for them first)."""
        if self.process is None:
            return
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- the launcher process ---------------------------------------------------------------------------------------
def _warm_up() -> None:
    """Import and build, once, everything a run's process needs before its first request."""
    import concurrent.futures.thread  # noqa: F401  (task runners)
    import zoneinfo  # noqa: F401

    import httpx  # noqa: F401

    import orchestrator.sdk.engine  # noqa: F401
    import orchestrator.workers.loading  # noqa: F401
    from orchestrator import config
    from orchestrator.client import get_client
    from orchestrator.sdk.parameters import validate_parameters

    def typed(number: int = 0, text: str = "") -> None:
        return None

    validate_parameters(typed, {"number": 1})  # loads pydantic's model machinery
    if config.get("ORCHESTRATOR_API_URL"):
        get_client()  # the HTTP client and its TLS context; no connection is opened before a fork


def _write(fd: int, line: str) -> None:
    os.write(fd, (line + "\n").encode())  # one write per line: lines never interleave


def _run_child(run_id: str, launcher_pid: int, protocol_fd: int, wake_fds: tuple[int, int]) -> None:
    """The body of a forked child: become a run's process, execute the run, exit (never returns)."""

    def body() -> int:
        signal.set_wakeup_fd(-1)
        for fd in (protocol_fd, *wake_fds):
            os.close(fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.setsid()
        die_with_parent(launcher_pid)
        import atexit

        atexit._clear()  # the launcher's exit functions are not this run's
        sys.argv = [sys.argv[0], run_id]
        from orchestrator.workers.execute import execute

        return execute(run_id)

    run_forked_child(body)


def serve(protocol_fd: int) -> int:
    """Fork a child per run id read from stdin until stdin closes, then wait for the children (module doc)."""
    die_with_parent()
    _warm_up()
    launcher_pid = os.getpid()
    wake_read, wake_write = os.pipe()
    for fd in (wake_read, wake_write):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the worker stops us, by closing stdin
    children: set[int] = set()
    pending = b""
    accepting = True

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children.clear()
                return
            if pid == 0:
                return
            children.discard(pid)
            _write(protocol_fd, f"exited {pid} {os.waitstatus_to_exitcode(status)}")

    while accepting or children:
        watched = [wake_read] + ([0] if accepting else [])
        try:
            ready, _, _ = select.select(watched, [], [], 5.0)
        except InterruptedError:
            ready = []
        if wake_read in ready:
            try:
                while os.read(wake_read, 512):
                    pass
            except BlockingIOError:
                pass
        reap()
        if 0 not in ready:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            accepting = False
            continue
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            run_id = raw.decode().strip()
            if not run_id:
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                pid = os.fork()
            except OSError as exc:
                _write(protocol_fd, f"failed {run_id} cannot fork: {exc}")
                continue
            if pid == 0:
                _run_child(run_id, launcher_pid, protocol_fd, (wake_read, wake_write))
            children.add(pid)
            _write(protocol_fd, f"started {run_id} {pid}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        sys.stderr.write("usage: python -m orchestrator.workers.launcher PROTOCOL_FD (started by a worker)\n")
        return 2
    if not os.environ.get(WORKER_PID_VARIABLE):
        sys.stderr.write(f"warning: {WORKER_PID_VARIABLE} is not set; started outside a worker\n")
    return serve(int(args[0]))


if __name__ == "__main__":
    sys.exit(main())
