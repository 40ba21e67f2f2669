"""Serve the ASGI application with N Daphne processes sharing one listening socket, and supervise them.

The parent (`Supervisor`) binds the socket once, starts each worker as `python -m orchestrator.server --fd N`
with that descriptor inherited, restarts a worker that dies after it started, and stops them all on SIGINT or
SIGTERM. A worker runs Daphne on the inherited descriptor and exits when its parent disappears.
With services on, worker 1 also runs the server services (apps/server_services): a Celery worker with Celery Beat
on a thread, on threads of that process (`Services`). docs/server.md and docs/services.md explain
the choices.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

# Defaults of the settings ORCHESTRATOR_SERVER_STOP_GRACE_SECONDS (seconds a process gets to finish its work
# after SIGTERM before it is killed), ORCHESTRATOR_SERVER_STARTUP_SECONDS (a process that exits sooner than this
# after its start failed to start: restarting it would only loop) and ORCHESTRATOR_SERVICES_CONCURRENCY (threads
# of the services' worker). `server start` reads the settings and hands them over: the supervisor has no Django.
STOP_GRACE_SECONDS = 10.0
STARTUP_SECONDS = 10.0
SERVICES_CONCURRENCY = 4
# How often the parent looks at its workers, and a worker at its parent: how soon they react, not tunables.
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


# With services on, server worker 1 also runs the server services: a Celery worker (threads: a few services at once)
# with Celery Beat on a thread (`run_services`). They were a process of their own, and a second copy of Django
# (about 55 MB) is most of what that process held; the services do little work between their runs.
# glibc gives each thread that allocates its own malloc arena (up to 8 per core), and each keeps freed memory:
# the request threads of a Daphne worker and the threads of the services' worker then hold several MB of free
# pages. Two arenas cost nothing measurable here (the GIL serialises allocations anyway) and save about 2 MB.
# An environment that sets MALLOC_ARENA_MAX itself wins.
CHILD_ENVIRONMENT = {"MALLOC_ARENA_MAX": "2"}


def child_environment(**extra: str) -> dict[str, str]:
    return {**CHILD_ENVIRONMENT, **os.environ, **extra}


# Plain classes rather than dataclasses: `dataclasses` imports `inspect`, 1.3 MB of the lean supervisor's 15.
class Worker:
    """A supervised Daphne worker (numbered from 1)."""

    __slots__ = ("number", "process", "started_at")

    def __init__(self, *, number: int, process: subprocess.Popen, started_at: float):
        self.number = number
        self.process = process
        self.started_at = started_at

    @property
    def label(self) -> str:
        return f"server worker {self.number}"


class Supervisor:
    """Start the Daphne workers on `sock` (worker 1 also running the services when they are on), keep them
    running, stop them on SIGINT/SIGTERM."""

    def __init__(self, sock: socket.socket, options: SupervisorOptions, *, say: Callable[[str], None] = print) -> None:
        self.sock = sock
        self.options = options
        self.say = say
        self.workers: list[Worker] = []
        self.stop_signal: int | None = None

    def start_worker(self, number: int) -> Worker:
        fd = self.sock.fileno()
        command = [sys.executable, "-m", "orchestrator.server", "worker", "--fd", str(fd), "--parent", str(os.getpid())]
        if self.options.access_log:
            command.append("--access-log")
        if self.options.services and number == 1:
            command += ["--services", "--services-concurrency", str(self.options.services_concurrency)]
            command += ["--stop-grace-seconds", str(self.options.stop_grace_seconds)]
        # A session of its own: Ctrl+C in the terminal reaches only the parent, which stops workers in order.
        process = subprocess.Popen(command, env=child_environment(), pass_fds=(fd,), start_new_session=True)
        return Worker(number=number, process=process, started_at=time.monotonic())

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stop_signal = signum

    def run(self, on_started: Callable[[], None] | None = None) -> None:
        """Run until SIGINT or SIGTERM; raise ServerError when a worker cannot start."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.workers = [self.start_worker(number) for number in range(1, self.options.workers + 1)]
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
            if time.monotonic() - worker.started_at < self.options.startup_seconds:
                raise ServerError(f"{worker.label} exited with code {code} while starting; see above")
            self.say(f"{worker.label} (pid {worker.process.pid}) exited with code {code}; restarting")
            self.workers[index] = self.start_worker(worker.number)

    def stop(self) -> None:
        """SIGTERM every worker, wait up to `stop_grace_seconds`, then kill what is left."""
        running = [worker for worker in self.workers if worker.process.poll() is None]
        for worker in running:
            worker.process.terminate()
        deadline = time.monotonic() + self.options.stop_grace_seconds
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


def _websocket_close_sends_its_reason() -> None:
    """Daphne drops the `reason` of an application's `websocket.close` (ASGI has carried one since 2.3): send it in
    the close frame, so a live page reads why its socket closed (4404: "no flow run with id ...")."""
    from daphne.ws_protocol import WebSocketProtocol

    if getattr(WebSocketProtocol, "_orchestrator_sends_close_reason", False):
        return
    handle_reply = WebSocketProtocol.handle_reply

    def handle_reply_with_reason(self, message):
        if message.get("type") == "websocket.close" and message.get("reason") and self.state == self.STATE_OPEN:
            # A close frame's reason is at most 123 bytes of UTF-8.
            reason = message["reason"].encode("utf-8")[:123].decode("utf-8", "ignore")
            self.sendClose(code=message.get("code") or 1000, reason=reason)
            return
        handle_reply(self, message)

    WebSocketProtocol.handle_reply = handle_reply_with_reason
    WebSocketProtocol._orchestrator_sends_close_reason = True


_fd_endpoint_patched = False


def _fd_endpoint_takes_a_domain_name() -> None:
    """Daphne's `fd:` endpoint passes `domain=INET6` on as the string "INET6" where Twisted wants the number
    socket.AF_INET6 (Twisted's own systemd endpoint does this lookup): without it an IPv6 socket cannot be adopted."""
    from twisted.plugins.fd_endpoint import _FDParser  # where Daphne installs its endpoint plugin

    global _fd_endpoint_patched
    if _fd_endpoint_patched:
        return
    parse = _FDParser._parseServer

    def _parseServer(self, reactor, fileno, domain=socket.AF_INET):
        if isinstance(domain, str):
            domain = getattr(socket, f"AF_{domain}")
        return parse(self, reactor, fileno, domain)

    # A deliberate patch of Twisted's class, which mypy rightly flags: assigning to a method.
    _FDParser._parseServer = _parseServer  # type: ignore[method-assign]
    _fd_endpoint_patched = True


def _leave_out_unused_libraries() -> None:
    """Keep out of a worker three libraries it never uses, which optional or incidental imports would load.

    Twisted loads pyOpenSSL and cryptography for TLS, which a worker serving plain HTTP on an inherited socket
    never uses (5 MB). On SQLite, DRF loads django.contrib.postgres, and with it psycopg (10 MB), only to map
    PostgreSQL field types that no model has there. Both imports are optional in those libraries (they catch the
    ImportError). And Daphne imports `autobahn.twisted.websocket`, whose package's `__init__` also loads Autobahn's
    WAMP client and with it cryptography (7 MB), which Daphne never uses: the package is registered without running
    its `__init__` (its submodules import as usual). Measured with benchmarks/server_memory.py; docs/server.md
    lists what a worker holds.
    """
    import importlib.util

    from orchestrator import config

    # None in sys.modules makes `import OpenSSL` raise ImportError (documented); typeshed types the values as modules.
    sys.modules.setdefault("OpenSSL", None)  # type: ignore[arg-type]
    if "autobahn.twisted" not in sys.modules:
        spec = importlib.util.find_spec("autobahn.twisted")
        if spec is not None:
            sys.modules["autobahn.twisted"] = importlib.util.module_from_spec(spec)
    database_url = config.get("ORCHESTRATOR_DATABASE_URL") or config.get_default_database_url()
    if database_url.startswith("sqlite"):
        sys.modules.setdefault("psycopg", None)  # type: ignore[arg-type]  # see OpenSSL above


class Services:
    """The server services inside a Daphne worker: Celery's worker (its `threads` pool, `concurrency` services at
    once) with Celery Beat on a thread (`--beat-thread`, orchestrator/celery.py), running on a thread of their own.

    This is what `celery -A orchestrator.celery worker --beat-thread --pool threads` runs, without Celery's command
    line parts that belong to a main thread (signal handlers, logging set-up, process title): the Daphne worker
    owns the process and its signals, and stops the services after its reactor stopped.
    """

    def __init__(self, *, concurrency: int, hostname: str) -> None:
        from orchestrator.celery import app

        app.finalize()
        app.set_current()
        self.controller = app.WorkController(
            hostname=hostname,
            # Only the services' queue, named: this process also sends celery pools' runs (`pool-<name>` queues,
            # the celery_dispatch consumer), and a worker consuming "every known queue" would take those too.
            queues=[app.conf.task_default_queue],
            pool="threads",
            concurrency=concurrency,
            loglevel="WARNING",
            without_gossip=True,
            without_mingle=True,
            without_heartbeat=True,
            beat_thread=True,
        )
        self.thread = threading.Thread(target=self.controller.start, name="services", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, grace_seconds: float) -> None:
        """Celery's warm shutdown: running services finish, Beat saves its schedule and stops."""
        from celery.signals import worker_shutting_down
        from celery.worker import state

        worker_shutting_down.send(sender=self.controller.hostname, sig="SIGTERM", how="Warm", exitcode=0)
        state.should_stop = 0
        self.thread.join(grace_seconds)


def run_worker(
    fd: int,
    parent_pid: int,
    access_log: bool,
    services_concurrency: int | None = None,
    stop_grace_seconds: float = STOP_GRACE_SECONDS,
) -> None:
    """One worker: Daphne serving orchestrator.asgi on the inherited listening socket; with
    `services_concurrency`, also the server services (`Services`)."""
    _leave_out_unused_libraries()
    # daphne.server installs Twisted's asyncio reactor when imported, so it comes before anything else Twisted.
    import daphne.server
    from daphne.access import AccessLogGenerator
    from twisted.internet import reactor, task

    from orchestrator.asgi import application

    _skip_form_parsing()
    _websocket_close_sends_its_reason()
    _fd_endpoint_takes_a_domain_name()
    from apps.events.runner import start_server_runner  # once orchestrator.asgi has set Django up

    # The event consumers (celery dispatch, ...) run in a daemon thread of each worker; the cursor lock keeps two
    # workers from handling one consumer's batch (docs/events.md).
    start_server_runner()
    from apps.notifications.sender import start_server_sender

    # The notifications the runner's consumer enqueues are sent from the outbox by a thread of each worker too.
    start_server_sender()
    services = None
    if services_concurrency is not None:
        services = Services(concurrency=services_concurrency, hostname=f"orchestrator-services-{parent_pid}@%h")
        services.start()

    services_failed = False

    def stop_if_orphaned() -> None:
        nonlocal services_failed
        # The parent was killed without a chance to stop us: nobody supervises this process any more.
        orphaned = os.getppid() != parent_pid
        # The services' worker ended on its own (an unrecoverable error, logged by Celery): exit with an error, so
        # the supervisor restarts this worker and the services with it.
        services_failed = services is not None and not services.thread.is_alive()
        if (orphaned or services_failed) and reactor.running:
            # Twisted types the reactor with zope interfaces, whose methods are declared without `self`: mypy reads
            # them right only with the mypy-zope plugin.
            reactor.stop()  # type: ignore[misc]

    task.LoopingCall(stop_if_orphaned).start(PARENT_CHECK_SECONDS, now=False)
    if access_log and isinstance(sys.stdout, io.TextIOWrapper):
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
    if services is not None:
        services.stop(stop_grace_seconds)
    if services_failed:
        sys.stderr.write("error: the server services stopped unexpectedly (see above); restarting this worker\n")
        sys.exit(1)


class SupervisorOptions:
    """What `server start` decides and the supervisor applies (from its arguments and the settings)."""

    __slots__ = ("workers", "access_log", "services", "services_concurrency", "stop_grace_seconds", "startup_seconds")

    def __init__(
        self,
        *,
        workers: int = 1,
        access_log: bool = False,
        services: bool = False,
        services_concurrency: int = SERVICES_CONCURRENCY,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
        startup_seconds: float = STARTUP_SECONDS,
    ) -> None:
        self.workers = workers
        self.access_log = access_log
        self.services = services
        self.services_concurrency = services_concurrency
        self.stop_grace_seconds = stop_grace_seconds
        self.startup_seconds = startup_seconds


def supervise(fd: int, options: SupervisorOptions, banner: list[str]) -> int:
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
        supervisor = Supervisor(sock, options, say=say)
        supervisor.run(on_started=started)
    except ServerError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    say("server stopped")
    return 0


def exec_supervisor(sock: socket.socket, options: SupervisorOptions, banner: list[str]) -> None:
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
        str(options.workers),
        "--services-concurrency",
        str(options.services_concurrency),
        "--stop-grace-seconds",
        str(options.stop_grace_seconds),
        "--startup-seconds",
        str(options.startup_seconds),
        "--banner",
        json.dumps(banner),
    ]
    if options.access_log:
        command.append("--access-log")
    if options.services:
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
    worker.add_argument("--services", action="store_true", help="also run the services (Celery worker and Beat)")
    worker.add_argument("--services-concurrency", type=int, default=SERVICES_CONCURRENCY)
    worker.add_argument("--stop-grace-seconds", type=float, default=STOP_GRACE_SECONDS)
    supervisor = roles.add_parser("supervise", help="start and watch the workers")
    supervisor.add_argument("--fd", type=int, required=True, help="inherited listening socket")
    supervisor.add_argument("--workers", type=int, required=True)
    supervisor.add_argument("--banner", default="[]", help="JSON list of lines to print once workers run")
    supervisor.add_argument("--access-log", action="store_true")
    supervisor.add_argument("--services", action="store_true", help="also run the services (Celery worker and Beat)")
    supervisor.add_argument("--services-concurrency", type=int, default=SERVICES_CONCURRENCY)
    supervisor.add_argument("--stop-grace-seconds", type=float, default=STOP_GRACE_SECONDS)
    supervisor.add_argument("--startup-seconds", type=float, default=STARTUP_SECONDS)
    options = parser.parse_args(argv)
    if options.role == "worker":
        concurrency = options.services_concurrency if options.services else None
        run_worker(options.fd, options.parent, options.access_log, concurrency, options.stop_grace_seconds)
    else:
        chosen = SupervisorOptions(
            workers=options.workers,
            access_log=options.access_log,
            services=options.services,
            services_concurrency=options.services_concurrency,
            stop_grace_seconds=options.stop_grace_seconds,
            startup_seconds=options.startup_seconds,
        )
        sys.exit(supervise(options.fd, chosen, json.loads(options.banner)))


if __name__ == "__main__":
    main()
