"""`orchestrator server start`, `server database reset|upgrade|vacuum` and `server services ls|run`.

`start` prepares the database once (migrations, the first admin user, the services' Beat entries) in this
process, then hands the listening socket to Daphne worker processes, the first of which also runs the services (a
Celery worker with Beat on a thread; orchestrator/server.py; design in docs/server.md and docs/services.md).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError, CommandParser
from django.db import IntegrityError, connection, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apps.accounts.keys import key_hash
from apps.accounts.models import ApiKey
from apps.accounts.services import local_admin_key_ensure
from apps.core.errors import NotFound
from apps.core.management.base import OneLineErrorParser, OrchestratorCommand, database_label, mask_url_password
from apps.server_services.database import (
    database_holders,
    database_vacuum,
    postgresql_database_create_if_missing,
)
from apps.server_services.models import ServiceRun
from apps.server_services.registry import service_get, services_all
from apps.server_services.selectors import ServiceStatus, service_status, services_status
from apps.server_services.services import service_run, service_schedules_sync
from orchestrator import config
from orchestrator.server import ServerError, SupervisorOptions, bind, exec_supervisor

ADMIN_USERNAME = "admin"
# The first admin user's password, in the home (0600): `server start` says where it is, never what it is.
ADMIN_PASSWORD_FILE = "admin_password"


def port_number(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 0 and 65535")
    return port


def worker_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError(f"{count} is not between 1 and 64")
    return count


def pending_migrations() -> int:
    """How many migrations the database still needs."""
    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def database_upgrade() -> int:
    """Apply every pending migration; return how many were applied."""
    pending = pending_migrations()
    if pending:
        call_command("migrate", interactive=False, verbosity=0)
    return pending


def database_drop() -> None:
    """Remove every table (SQLite: the database file itself), so the schema can be built from nothing."""
    if connection.vendor == "sqlite":
        name = str(connection.settings_dict["NAME"])
        connection.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(name + suffix).unlink(missing_ok=True)
    elif connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            relations = connection.introspection.get_table_list(cursor)
            tables = [connection.ops.quote_name(r.name) for r in relations if r.type == "t"]
            views = [connection.ops.quote_name(r.name) for r in relations if r.type == "v"]
            if views:
                cursor.execute(f"DROP VIEW IF EXISTS {', '.join(views)} CASCADE")
            if tables:
                cursor.execute(f"DROP TABLE IF EXISTS {', '.join(tables)} CASCADE")
    else:
        raise CommandError(f"resetting a {connection.vendor} database is not supported")


def first_admin_create() -> str | None:
    """Create the `admin` superuser with a random password when no superuser exists; return the password."""
    user_model = get_user_model()
    if user_model.objects.filter(is_superuser=True).exists():
        return None
    if user_model.objects.filter(username=ADMIN_USERNAME).exists():
        return None
    password = secrets.token_urlsafe(15)
    try:
        user_model.objects.create_superuser(username=ADMIN_USERNAME, email="", password=password)
    except IntegrityError:  # another server created it a moment ago
        return None
    return password


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(now: datetime, moment: datetime) -> str:
    return f"{duration_text((now - moment).total_seconds())} ago"


def duration_text(seconds: float) -> str:
    """A length of time, short: 45s, 5m, 2m30s, 1h, 1h30m, 2d, 2d3h."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h{rest // 60}m" if rest // 60 else f"{hours}h"
    days, rest = divmod(seconds, 86400)
    return f"{days}d{rest // 3600}h" if rest // 3600 else f"{days}d"


def interval_text(status: ServiceStatus) -> str:
    every = duration_text(status.interval_seconds) if status.interval_seconds is not None else status.schedule
    return every if status.enabled else f"{every} (disabled)"


def megabytes(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"


def result_text(record: ServiceRun | None) -> str:
    if record is None:
        return ""
    if record.skipped:
        return "skipped: another process was running it"
    if record.error:
        return f"error: {record.error}"
    if isinstance(record.result, dict):
        return "ok: " + (" ".join(f"{key}={value}" for key, value in record.result.items()) or "nothing to do")
    return "ok" if record.result is None else f"ok: {record.result}"


class Command(OrchestratorCommand):
    help = "Run the API and UI server, or manage its database."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, parser_class=OneLineErrorParser, metavar="{start,database}"
        )
        start = actions.add_parser("start", help="migrate if needed and serve the API and the UI")
        start.add_argument(
            "--host", default="127.0.0.1", help="address to listen on: IPv4 or IPv6, :: for both (default 127.0.0.1)"
        )
        start.add_argument("--port", type=port_number, default=4200, help="TCP port (default 4200; 0 picks a free one)")
        start.add_argument(
            "--workers", type=worker_count, default=1, help="Daphne processes sharing the socket (default 1)"
        )
        start.add_argument("--access-log", action="store_true", help="print one line per request (slower)")
        start.add_argument(
            "--insecure",
            action="store_true",
            help="allow listening beyond loopback with ORCHESTRATOR_API_AUTH=off (anyone who reaches it runs code)",
        )
        start.add_argument(
            "--no-services",
            action="store_true",
            help="do not run the services (run Beat and workers with `celery -A orchestrator.celery ...`)",
        )

        database = actions.add_parser("database", help="reset, upgrade or vacuum the database")
        database_actions = database.add_subparsers(
            dest="database_action", required=True, metavar="{reset,upgrade,vacuum}"
        )
        reset = database_actions.add_parser("reset", help="drop everything and re-apply the schema")
        reset.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
        database_actions.add_parser("upgrade", help="apply pending migrations")
        vacuum = database_actions.add_parser("vacuum", help="give back the space of deleted rows (after retention)")
        vacuum.add_argument(
            "--full",
            action="store_true",
            help="PostgreSQL: VACUUM FULL, which returns all the space but locks each table while it is rewritten",
        )

        services = actions.add_parser("services", help="list the server services or run one in the foreground")
        services_actions = services.add_subparsers(dest="services_action", required=True, metavar="{ls,run}")
        services_actions.add_parser("ls", help="each service, its interval, last run and last result")
        run = services_actions.add_parser("run", help="run one service in the foreground, at its interval")
        run.add_argument("name", help=f"one of: {', '.join(service.name for service in services_all())}")
        run.add_argument("--once", action="store_true", help="run it once and exit")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "start":
            self.start(
                host=options["host"],
                port=options["port"],
                workers=options["workers"],
                access_log=options["access_log"],
                services=not options["no_services"],
                insecure=options["insecure"],
            )
        elif action == "services":
            if options["services_action"] == "ls":
                self.services_ls()
            else:
                self.services_run(name=options["name"], once=options["once"])
        elif options["database_action"] == "reset":
            self.reset(assume_yes=options["yes"])
        elif options["database_action"] == "vacuum":
            self.vacuum(full=options["full"])
        else:
            self.create_database_if_missing()
            self.say(self.migrated_message(database_upgrade()))

    def say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()

    @staticmethod
    def migrated_message(applied: int) -> str:
        if not applied:
            return "database up to date"
        return f"database upgraded: applied {applied} migration{'s' if applied != 1 else ''}"

    def create_database_if_missing(self) -> None:
        created = postgresql_database_create_if_missing()
        if created:
            self.say(created)

    def prepare_database(self) -> None:
        self.create_database_if_missing()
        pending = pending_migrations()
        if pending:
            self.say(f"applying {pending} migration{'s' if pending != 1 else ''} to {database_label()} ...")
        self.say(self.migrated_message(database_upgrade()))
        password = first_admin_create()
        if password:
            self.say_admin_created(password)

    def say_admin_created(self, password: str) -> None:
        """Where the new admin user's password is: in a file of the home that only its owner reads, never in the
        output (which ends in logs)."""
        path = settings.ORCHESTRATOR_HOME / ADMIN_PASSWORD_FILE
        config.private_file_write(path, password + "\n")
        self.say(f"created the admin user: username {ADMIN_USERNAME}; its password is in {path} (readable by you only)")
        self.say(f"  change it with `orchestrator changepassword {ADMIN_USERNAME}`, then delete that file")

    def check_open_api(self, *, host: str, insecure: bool) -> None:
        """With keys off, say so at every start; beyond loopback, refuse unless --insecure."""
        if settings.API_AUTH:
            return
        if not is_loopback(host) and not insecure:
            raise CommandError(
                f"ORCHESTRATOR_API_AUTH is off and --host {host} is reachable from other machines: anyone could run "
                "code on your workers; turn keys on, listen on 127.0.0.1, or pass --insecure"
            )
        self.say("warning: ORCHESTRATOR_API_AUTH is off: anyone who reaches this server may call its whole API")

    def ensure_local_key(self) -> None:
        """The machine's own admin key, in the home's active profile, so that the CLI, the SDK and workers here
        work with no step (docs/security.md). A key from the environment is the caller's business: checked only."""
        if not settings.API_AUTH:
            return
        key, source = config.resolve("ORCHESTRATOR_API_KEY")
        if source == config.ENV:
            if key and not ApiKey.objects.filter(key_hash=key_hash(key)).exists():
                self.say(
                    "warning: ORCHESTRATOR_API_KEY (environment) is not a key of this server; clients using it "
                    "will get 401 (`orchestrator api-key create NAME` makes one)"
                )
            return
        outcome = local_admin_key_ensure(key=key)
        if outcome is None:
            return
        happened, secret = outcome
        profile, _ = config.active_profile()
        if happened == "created":
            config.set_values({"ORCHESTRATOR_API_KEY": secret})
            self.say(f"API keys are required: created an admin key for this machine in profile {profile!r}")
            self.say(f"  ({config.profiles_path()}, readable by you only); the CLI, SDK and workers here use it")
        else:
            self.say(f"API keys are required: registered profile {profile!r}'s key as this database's admin key")
        self.say("  elsewhere: `orchestrator api-key create NAME --scope write` and set ORCHESTRATOR_API_KEY there")

    def restrict_home(self) -> None:
        """ORCHESTRATOR_HOME 0700; its SQLite database (SQLite gives a new -wal and -shm the database file's mode),
        secret key and profiles 0600: another user of the machine reads no run, key or secret there."""
        home = config.home_ensure()
        private = [home / "secret_key", config.profiles_path()]
        if connection.vendor == "sqlite":
            database = str(connection.settings_dict["NAME"])
            private += [Path(database + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
        for path, mode in [(home, config.HOME_MODE), *((path, config.PRIVATE_FILE_MODE) for path in private)]:
            try:
                if path.exists() and path.stat().st_mode & 0o777 != mode:
                    path.chmod(mode)
                    if path == home:  # a new database file is the usual case, not worth a line
                        self.say(f"made {home} readable by its owner only (mode {mode:o})")
            except OSError as exc:
                self.say(f"warning: cannot make {path} readable by its owner only: {exc.strerror}")

    def start(self, *, host: str, port: int, workers: int, access_log: bool, services: bool, insecure: bool) -> None:
        self.check_open_api(host=host, insecure=insecure)
        try:
            sock = bind(host, port)  # first, so a busy port fails before any other work
        except ServerError as exc:
            raise CommandError(str(exc)) from exc
        try:
            self.prepare_database()
            self.restrict_home()
            self.ensure_local_key()
            service_schedules_sync()  # so the admin lists the services' Beat entries even with --no-services
        except BaseException:
            sock.close()
            raise
        # Workers open their own connections; the supervisor keeps none open while it waits.
        connections.close_all()
        shown_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host.strip("[]"), host.strip("[]"))
        if ":" in shown_host:
            shown_host = f"[{shown_host}]"  # an IPv6 address in a URL
        base = f"http://{shown_host}:{sock.getsockname()[1]}"
        listen = f"[{host.strip('[]')}]" if ":" in host else host

        banner = [
            f"server started: {workers} worker{'s' if workers != 1 else ''} on {listen}:{sock.getsockname()[1]}",
            f"API: {base}/api",
            f"UI:  {base}/ui/ (configuration in the admin: {base}/admin/)",
            "point clients at it with:",
            f"  orchestrator config set ORCHESTRATOR_API_URL={base}/api",
            self.services_line(services),
            "press Ctrl+C to stop",
        ]
        # The workers answer the loopback names and this host (settings.ALLOWED_HOSTS); they inherit the environment.
        os.environ[config.LISTEN_HOST_VARIABLE] = host
        os.environ[config.BASE_URL_VARIABLE] = base  # the links in notifications (ORCHESTRATOR_UI_URL unset)
        # From here on the process holds no Django: it becomes the lean supervisor of the Daphne workers.
        options = SupervisorOptions(
            workers=workers,
            access_log=access_log,
            services=services,
            services_concurrency=settings.ORCHESTRATOR_SERVICES_CONCURRENCY,
            stop_grace_seconds=settings.ORCHESTRATOR_SERVER_STOP_GRACE_SECONDS,
            startup_seconds=settings.ORCHESTRATOR_SERVER_STARTUP_SECONDS,
        )
        exec_supervisor(sock, options, banner)

    @staticmethod
    def services_line(running: bool) -> str:
        if not running:
            return "services: not started (--no-services); run `celery -A orchestrator.celery worker` and `... beat`"
        if settings.SERVICES_EMBEDDED_BROKER:
            broker = "embedded broker"
        else:
            broker = f"broker {mask_url_password(settings.CELERY_BROKER_URL)}"
        names = ", ".join(service.name for service in services_all())
        return f"services: {names} (a Celery worker with Beat on a thread, in server worker 1, {broker})"

    def services_ls(self) -> None:
        now = timezone.now()
        rows = []
        for status in services_status():
            last = status.last_run
            rows.append(
                [
                    status.service.name,
                    interval_text(status),
                    f"{clock(last.started_at)} ({ago(now, last.started_at)})" if last else "never",
                    f"{last.duration_seconds:.3f}s" if last else "",
                    result_text(last),
                ]
            )
        self.print_table(["SERVICE", "EVERY", "LAST RUN", "TOOK", "LAST RESULT"], rows)

    def services_run(self, *, name: str, once: bool) -> None:
        try:
            service = service_get(name=name)
        except NotFound as exc:
            raise CommandError(exc.message) from None
        record = None
        try:
            while True:
                # A str at runtime ("cli"): mypy, without django-stubs, sees TextChoices members as tuples.
                record = service_run(name=service.name, trigger=ServiceRun.Trigger.CLI)  # type: ignore[arg-type]
                took = f"{record.duration_seconds:.3f}s"
                self.say(f"{clock(record.started_at)} {service.name}: {result_text(record)} ({took})")
                if once:
                    break
                # Re-read each time: an interval changed in the admin applies from the next run.
                interval = service_status(service=service).interval_seconds or service.interval_seconds
                time.sleep(max(0.0, interval - record.duration_seconds))
        except KeyboardInterrupt:
            self.say(f"{service.name}: stopped")
        if once and record is not None and record.error:
            raise CommandError(f"{service.name} failed: {record.error}")

    def vacuum(self, *, full: bool) -> None:
        if full and connection.vendor != "postgresql":
            raise CommandError("--full is for PostgreSQL; SQLite's VACUUM always rewrites the whole file")
        before, after = database_vacuum(full=full)
        self.say(
            f"database vacuumed: {database_label()}: {megabytes(before)} -> {megabytes(after)} "
            f"({megabytes(max(0, before - after))} reclaimed)"
        )

    def reset(self, *, assume_yes: bool) -> None:
        label = database_label()
        holders = database_holders()
        if holders:
            # Deleting a database under a running server loses everything it writes afterwards, silently.
            raise CommandError(
                f"{label} is in use by {len(holders)} other process(es): {'; '.join(holders[:5])}; "
                "stop them first (Ctrl+C in the `server start` terminal, stop workers and flows)"
            )
        if not assume_yes:
            self.say(f"This deletes everything in {label}: flows, runs, logs, users and settings kept there.")
            self.say("Stop any server using this database first.")
            self.stdout.write("Reset the database? [y/N] ", ending="")
            self.stdout.flush()
            answer = sys.stdin.readline().strip().lower()
            if not sys.stdin.isatty():
                self.say("")  # the answer came from a pipe, so no newline was echoed after the prompt
            if answer not in ("y", "yes"):
                raise CommandError("aborted; the database was not changed")
        database_drop()
        applied = database_upgrade()
        self.say(f"database reset: {label}, applied {applied} migration{'s' if applied != 1 else ''}")
        password = first_admin_create()
        if password:
            self.say_admin_created(password)
