"""Serve the ASGI application with N Daphne processes sharing one listening socket, and supervise them.

The parent (`Supervisor`) binds the socket once, starts each worker as `python -m orchestrator.server --fd N`
with that descriptor inherited, restarts a worker that dies after it started, and stops them all on SIGINT or
SIGTERM. A worker runs Daphne on the inherited descriptor and exits when its parent disappears.
With services on, the supervisor also runs Celery Beat and a Celery worker for the server services
(apps/services) and supervises them the same way. docs/server.md and docs/services.md explain the choices.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

# Seconds a worker gets to finish its requests after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 10.0
# A worker that exits sooner than this after its start failed to start: restarting it would only loop.
STARTUP_SECONDS = 10.0
# How often the parent looks at its workers, and a worker at its parent.
POLL_SECONDS = 0.2
PARENT_CHECK_SECONDS = 1.0
LISTEN_BACKLOG = 1024


class ServerError(Exception):
    """The server cannot start or keep running; the message is one line for the user."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv4, or IPv6 for an IPv6 address or name) that child processes can inherit;
    errors name the host and port. `::` also accepts IPv4 clients where the system allows dual-stack sockets."""
    host = host.strip("[]")  # [::1], as written in URLs
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServerError(f"cannot resolve host {host!r} to an address ({exc.strerror})") from exc
    family, _, _, _, address = sorted(infos, key=lambda info: info[0] != socket.AF_INET)[0]  # IPv4 first
    sock = socket.socket(family, socket.SOCK_STREAM)
    # Lets a restarted server bind while old connections sit in TIME_WAIT; a live listener still refuses us.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServerError(
                f"port {port} on {host} is already in use; stop the other server or choose another --port"
            ) from exc
        if exc.errno == errno.EACCES:
            raise ServerError(f"no permission to listen on port {port}; ports below 1024 need root") from exc
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ServerError(f"{host} is not an address of this machine; try 127.0.0.1 or 0.0.0.0") from exc
        raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


# The server services' processes: Celery Beat and one Celery worker (threads: one process, a few services at
# once). `--quiet` drops Celery's banners; Django's checks already ran in `server start`. Celery's warning about
# running as root says nothing here: the worker runs as whoever started the server, like the Daphne workers.
# Without --queues the worker consumes only the services' queue (CELERY_TASK_DEFAULT_QUEUE), never a celery
# pool's `pool-<name>`: flow runs belong on the pool's own workers (`orchestrator worker start --pool P`).
CELERY_COMMAND = [
    sys.executable,
    "-W",
    "ignore:You're running the worker with superuser privileges",
    "-m",
    "celery",
    "--quiet",
    "--skip-checks",
    "-A",
    "orchestrator.celery",
]
SERVICE_PROCESSES = {
    "services beat": ["beat", "--loglevel", "WARNING"],
    "services worker": [
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        "4",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
    ],
}
# The supervisor's pid, given to the services processes: they stop when it is gone (orchestrator/celery.py).
SUPERVISOR_PID_VARIABLE = "ORCHESTRATOR_SUPERVISOR_PID"


@dataclass
class Worker:
    number: int
    process: subprocess.Popen
    started_at: float
    role: str = "server worker"

    @property
    def label(self) -> str:
        return f"{self.role} {self.number}" if self.role == "server worker" else self.role


class Supervisor:
    """Start `workers` Daphne processes on `sock` (and, with `services`, Celery Beat and a services worker), keep
    them running, stop them on SIGINT/SIGTERM."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        workers: int,
        access_log: bool = False,
        services: bool = False,
        say: Callable[[str], None] = print,
    ) -> None:
        self.sock = sock
        self.worker_count = workers
        self.access_log = access_log
        self.services = services
        self.say = say
        self.workers: list[Worker] = []
        self.stop_signal: int | None = None

    def start_worker(self, number: int) -> Worker:
        fd = self.sock.fileno()
        command = [sys.executable, "-m", "orchestrator.server", "worker", "--fd", str(fd), "--parent", str(os.getpid())]
        if self.access_log:
            command.append("--access-log")
        # A session of its own: Ctrl+C in the terminal reaches only the parent, which stops workers in order.
        process = subprocess.Popen(command, pass_fds=(fd,), start_new_session=True)
        return Worker(number=number, process=process, started_at=time.monotonic())

    def start_service_process(self, role: str) -> Worker:
        """Celery Beat or the services' Celery worker, in its own session like the server workers."""
        command = [*CELERY_COMMAND, *SERVICE_PROCESSES[role]]
        if role == "services worker":
            command += ["--hostname", f"orchestrator-services-{os.getpid()}@%h"]
        env = {**os.environ, SUPERVISOR_PID_VARIABLE: str(os.getpid())}
        # Their logs go to stderr; on stdout Celery only says "worker: Warm shutdown", which reads as ours.
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
        return Worker(number=1, process=process, started_at=time.monotonic(), role=role)

    def restart(self, worker: Worker) -> Worker:
        if worker.role == "server worker":
            return self.start_worker(worker.number)
        return self.start_service_process(worker.role)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stop_signal = signum

    def run(self, on_started: Callable[[], None] | None = None) -> None:
        """Run until SIGINT or SIGTERM; raise ServerError when a worker cannot start."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.workers = [self.start_worker(number) for number in range(1, self.worker_count + 1)]
            if self.services:
                self.workers += [self.start_service_process(role) for role in SERVICE_PROCESSES]
            if on_started:
                on_started()
            while self.stop_signal is None:
                self._check_workers()
                time.sleep(POLL_SECONDS)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _check_workers(self) -> None:
        for index, worker in enumerate(self.workers):
            code = worker.process.poll()
            if code is None or self.stop_signal is not None:
                continue
            if time.monotonic() - worker.started_at < STARTUP_SECONDS:
                raise ServerError(f"{worker.label} exited with code {code} while starting; see above")
            self.say(f"{worker.label} (pid {worker.process.pid}) exited with code {code}; restarting")
            self.workers[index] = self.restart(worker)

    def stop(self) -> None:
        """SIGTERM every worker, wait up to STOP_GRACE_SECONDS, then kill what is left."""
        running = [worker for worker in self.workers if worker.process.poll() is None]
        for worker in running:
            worker.process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for worker in running:
            try:
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{worker.label} (pid {worker.process.pid}) did not stop; killing it")
                worker.process.kill()
                worker.process.wait()
        self.sock.close()


def _skip_form_parsing() -> None:
    """Twisted parses the Content-Type of every POST with the `email` package to fill `request.args` with form
    fields; Daphne never reads them (Django parses bodies itself), and the parse was 6% of a state change's CPU."""
    from daphne.http_protocol import WebRequest

    if getattr(WebRequest, "_orchestrator_skips_form_parsing", False):
        return
    init = WebRequest.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False

    WebRequest.__init__ = __init__
    WebRequest._orchestrator_skips_form_parsing = True


def _fd_endpoint_takes_a_domain_name() -> None:
    """Daphne's `fd:` endpoint passes `domain=INET6` on as the string "INET6" where Twisted wants the number
    socket.AF_INET6 (Twisted's own systemd endpoint does this lookup): without it an IPv6 socket cannot be adopted."""
    from twisted.plugins.fd_endpoint import _FDParser  # where Daphne installs its endpoint plugin

    if getattr(_FDParser, "_orchestrator_domain_names", False):
        return
    parse = _FDParser._parseServer

    def _parseServer(self, reactor, fileno, domain=socket.AF_INET):
        if isinstance(domain, str):
            domain = getattr(socket, f"AF_{domain}")
        return parse(self, reactor, fileno, domain)

    _FDParser._parseServer = _parseServer
    _FDParser._orchestrator_domain_names = True


def run_worker(fd: int, parent_pid: int, access_log: bool) -> None:
    """One worker: Daphne serving orchestrator.asgi on the inherited listening socket."""
    # daphne.server installs Twisted's asyncio reactor when imported, so it comes before anything else Twisted.
    import daphne.server
    from daphne.access import AccessLogGenerator
    from twisted.internet import reactor, task

    from orchestrator.asgi import application

    _skip_form_parsing()
    _fd_endpoint_takes_a_domain_name()
    from apps.events.runner import start_server_runner  # once orchestrator.asgi has set Django up

    # The event consumers (celery dispatch, ...) run in a daemon thread of each worker; the cursor lock keeps two
    # workers from handling one consumer's batch (docs/events.md).
    start_server_runner()

    def stop_if_orphaned() -> None:
        # The parent was killed without a chance to stop us: nobody supervises this process any more.
        if os.getppid() != parent_pid and reactor.running:
            reactor.stop()

    task.LoopingCall(stop_if_orphaned).start(PARENT_CHECK_SECONDS, now=False)
    if access_log:
        sys.stdout.reconfigure(line_buffering=True)
    listening = socket.socket(fileno=fd)
    domain = "INET6" if listening.family == socket.AF_INET6 else "INET"
    listening.detach()  # only looked at: the endpoint below adopts the descriptor
    server = daphne.server.Server(
        application=application,
        # Daphne's fd endpoint (its twisted plugin) adopts the socket; it must be told the address family.
        endpoints=[f"fd:fileno={fd}:domain={domain}"],
        signal_handlers=True,
        action_logger=AccessLogGenerator(sys.stdout) if access_log else None,
    )
    server.run()


def supervise(fd: int, workers: int, access_log: bool, banner: list[str], services: bool = False) -> int:
    """The supervisor after `server start` prepared everything: it holds no Django, only the socket.

    `server start` runs migrations and prints nothing it cannot take back, then replaces itself (exec) with
    this lean process, so the supervisor's memory is a few MB instead of a second copy of the application.
    """
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(True)

    def say(message: str) -> None:
        print(message, flush=True)

    def started() -> None:
        for line in banner:
            say(line)

    try:
        supervisor = Supervisor(sock, workers=workers, access_log=access_log, services=services, say=say)
        supervisor.run(on_started=started)
    except ServerError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    say("server stopped")
    return 0


def exec_supervisor(
    sock: socket.socket, *, workers: int, access_log: bool, banner: list[str], services: bool = False
) -> None:
    """Replace the current process with the lean supervisor, handing it the listening socket."""
    import json

    sys.stdout.flush()
    sys.stderr.flush()
    command = [
        sys.executable,
        "-m",
        "orchestrator.server",
        "supervise",
        "--fd",
        str(sock.fileno()),
        "--workers",
        str(workers),
        "--banner",
        json.dumps(banner),
    ]
    if access_log:
        command.append("--access-log")
    if services:
        command.append("--services")
    os.execv(sys.executable, command)


def main(argv: list[str] | None = None) -> None:
    import json

    parser = argparse.ArgumentParser(description="Processes of `orchestrator server start` (internal).")
    roles = parser.add_subparsers(dest="role", required=True)
    worker = roles.add_parser("worker", help="one Daphne worker on an inherited socket")
    worker.add_argument("--fd", type=int, required=True, help="inherited listening socket")
    worker.add_argument("--parent", type=int, required=True, help="pid of the supervising process")
    worker.add_argument("--access-log", action="store_true")
    supervisor = roles.add_parser("supervise", help="start and watch the workers")
    supervisor.add_argument("--fd", type=int, required=True, help="inherited listening socket")
    supervisor.add_argument("--workers", type=int, required=True)
    supervisor.add_argument("--banner", default="[]", help="JSON list of lines to print once workers run")
    supervisor.add_argument("--access-log", action="store_true")
    supervisor.add_argument("--services", action="store_true", help="also run Celery Beat and a services worker")
    options = parser.parse_args(argv)
    if options.role == "worker":
        run_worker(options.fd, options.parent, options.access_log)
    else:
        sys.exit(
            supervise(options.fd, options.workers, options.access_log, json.loads(options.banner), options.services)
        )


if __name__ == "__main__":
    main()
