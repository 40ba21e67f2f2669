"""The in-process transport: the API's own Django WSGI application, called on a few long-lived ORM threads.

Without ORCHESTRATOR_API_URL the client sends the same HTTP requests as to a server, but to the WSGI handler in
this process (through `httpx.WSGITransport`): the same views, serializers, services and error handler answer, so
the two modes cannot drift. Django is set up (and the SQLite schema migrated) on first use.

Every request is handled on one of the `OrmThreads`: Django opens one database connection per thread, and runs
start threads all the time (task runners, timeouts, asyncio.to_thread), so handling requests here keeps the
connections few and reused. It also keeps ORM calls out of event loops (Django refuses them there, and async
flows call the client from one).

Requests carry an identity in the WSGI environ (`orchestrator.identity`, the local admin): when the API requires
keys, a call from this process is trusted as the machine's owner without one.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from orchestrator import config

# How many threads make the in-process API calls (one database connection each). SQLite takes one writer at a
# time anyway; on PostgreSQL this bounds the connections a busy flow process holds.
ORM_THREADS = 8
# The identity of in-process requests (see the module docstring).
LOCAL_ADMIN = "local-admin"
IDENTITY_KEY = "orchestrator.identity"
EXCEPTION_KEY = "orchestrator.exception"
ORM_THREAD_PREFIX = "orchestrator-orm-"

P = ParamSpec("P")
T = TypeVar("T")


class OrmThreads:
    """The few long-lived threads that make every ORM call of this process's in-process client."""

    def __init__(self, size: int = ORM_THREADS) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]
        ] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{ORM_THREAD_PREFIX}{index}", daemon=True)
            for index in range(size)
        ]
        self._idents: set[int] = set()
        for thread in self._threads:
            thread.start()
            if thread.ident is None:  # start() sets it; None would mean the thread never started
                raise RuntimeError(f"ORM thread {thread.name} did not start")
            self._idents.add(thread.ident)

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` on an ORM thread and wait for its result (or exception)."""
        if threading.get_ident() in self._idents:  # already on one (a request made while handling one)
            return fn(*args, **kwargs)
        job: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((job, fn, args, kwargs))
        return job.result()

    def _work(self) -> None:
        while True:
            job, fn, args, kwargs = self._jobs.get()
            if not job.set_running_or_notify_cancel():
                continue
            try:
                job.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the caller
                job.set_exception(exc)

    def close_connections(self, timeout: float = 30.0) -> None:
        """Close every thread's database connections; each thread reconnects on its next call."""
        everyone = threading.Barrier(len(self._threads) + 1, timeout=timeout)

        def close_mine() -> None:
            from django.db import connections

            connections.close_all()
            everyone.wait()  # holds this thread so that each one takes exactly one of these jobs

        for _ in self._threads:
            self._jobs.put((concurrent.futures.Future(), close_mine, (), {}))
        everyone.wait()


_orm_threads: OrmThreads | None = None
_orm_threads_lock = threading.Lock()


def orm_threads() -> OrmThreads:
    global _orm_threads
    if _orm_threads is None:
        with _orm_threads_lock:
            if _orm_threads is None:
                _orm_threads = OrmThreads()
    return _orm_threads


def release_database_connections() -> None:
    """Close the in-process client's database connections (they reopen when needed). A test suite calls this
    before it drops the test database; a long-lived process may call it when idle."""
    if _orm_threads is not None and _django_ready:
        _orm_threads.close_connections()


_django_lock = threading.Lock()
_django_ready = False


def setup_django() -> None:
    """Load Django for in-process calls and bring the database schema up to date (once per process)."""
    global _django_ready
    if _django_ready:
        return
    with _django_lock:
        if _django_ready:
            return
        from django.apps import apps

        if apps.ready:  # the process set Django up itself (a Celery worker, a test run): its schema is its own
            _django_ready = True
            return
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
        problems = config.problems()
        if problems:
            raise config.ConfigError("invalid configuration: " + "; ".join(problems))
        import django

        django.setup()
        _migrate_if_needed()
        _django_ready = True


def _migrate_if_needed() -> None:
    """Apply migrations when the code's migrations differ from those last applied to this database."""
    from django.conf import settings

    root = Path(__file__).resolve().parent.parent.parent / "apps"
    names = sorted(str(path.relative_to(root)) for path in root.glob("*/migrations/0*.py"))
    database = settings.DATABASES["default"]
    fingerprint = hashlib.sha256(("\n".join(names) + str(database["NAME"])).encode()).hexdigest()[:16]
    stamp = settings.ORCHESTRATOR_HOME / f".schema-{fingerprint}"
    if database["ENGINE"].endswith("sqlite3") and not Path(database["NAME"]).exists():
        stamp.unlink(missing_ok=True)
    if stamp.exists():
        return
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text("\n".join(names))


def _host_header() -> str:
    """A Host the API accepts: the first of ALLOWED_HOSTS when it names one, else localhost."""
    from django.conf import settings

    for host in settings.ALLOWED_HOSTS:
        if host and "*" not in host and not host.startswith("."):
            return str(host)
    return "localhost"


def _keep_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
    """Django is about to turn an exception into a 500 page: for an in-process request, keep the exception so
    that the caller gets it (a database that is not set up, a locked SQLite file) instead of a 500 to retry."""
    if request is not None and IDENTITY_KEY in request.META:
        request.META[EXCEPTION_KEY] = sys.exc_info()[1]


class _NotOnOrmThreads(logging.Filter):
    """Django's request log (a 404 warning, a 500 traceback) is the server's; in-process, the client reports the
    failure itself, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not threading.current_thread().name.startswith(ORM_THREAD_PREFIX)


def _wsgi_application(identity: str) -> Callable[..., Any]:
    """Django's WSGI handler (what orchestrator/wsgi.py serves, without setting Django up a second time), with
    the caller's identity and an accepted Host in every request's environ; an exception in the API's code is
    raised to the caller, as a direct call would."""
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import got_request_exception

    got_request_exception.connect(_keep_exception, dispatch_uid="orchestrator.client.in_process")
    request_log = logging.getLogger("django.request")
    if not any(isinstance(existing, _NotOnOrmThreads) for existing in request_log.filters):
        request_log.addFilter(_NotOnOrmThreads())
    handler = WSGIHandler()
    host = _host_header()
    # With ORCHESTRATOR_HTTPS the API redirects plain http to https: a call inside this process is neither.
    scheme = "https" if settings.SECURE_SSL_REDIRECT else "http"

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ[IDENTITY_KEY] = identity
        environ["HTTP_HOST"] = host
        environ["wsgi.url_scheme"] = scheme
        response = handler(environ, start_response)
        exception = environ.get(EXCEPTION_KEY)
        if exception is not None:
            response.close()
            raise exception
        return response

    return application


def in_process_transport(identity: str = LOCAL_ADMIN) -> Any:
    """An httpx transport that hands each request to this process's API on an ORM thread."""
    import httpx

    threads = orm_threads()
    threads.call(setup_django)
    wsgi = httpx.WSGITransport(app=_wsgi_application(identity))

    def handle(request: httpx.Request) -> httpx.Response:
        # Read the body here too: closing Django's response (request_finished) belongs on the ORM thread.
        response = wsgi.handle_request(request)
        return httpx.Response(response.status_code, headers=response.headers, content=response.read())

    class InProcessTransport(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return threads.call(handle, request)

    return InProcessTransport()


def record_task_runs(
    task_runs: list[dict[str, Any]], states: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The one in-process shortcut: `POST /api/task_runs/record/` without the request, its JSON and its
    serializer (the records come from the SDK's own shipper, whose State objects need no parsing). The SDK's
    hot path is this call: through the WSGI handler a trivial task costs about a third more CPU, which breaks the
    under-1-ms budget (docs/sdk.md). tests/sdk/test_client.py checks that it records what the API records."""
    from apps.runs import services

    return orm_threads().call(services.task_runs_record, task_runs=task_runs, states=states)
