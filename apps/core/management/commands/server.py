"""`orchestrator server start` and `orchestrator server database reset|upgrade`.

`start` prepares the database once (migrations, the first admin user) in this process, then hands the
listening socket to Daphne worker processes (orchestrator/server.py; design in docs/server.md).
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError, CommandParser
from django.db import IntegrityError, connection, connections, transaction
from django.db.migrations.executor import MigrationExecutor

from apps.core.management.base import OneLineErrorParser, OrchestratorCommand, mask_url_password
from orchestrator import config
from orchestrator.server import ServerError, bind, exec_supervisor

ADMIN_USERNAME = "admin"


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


def database_label() -> str:
    try:
        url, _ = config.resolve("ORCHESTRATOR_DATABASE_URL")
    except config.ConfigError:
        url = config.get_default_database_url()
    return mask_url_password(url) or ""


class Command(OrchestratorCommand):
    help = "Run the API and UI server, or manage its database."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, parser_class=OneLineErrorParser, metavar="{start,database}"
        )
        start = actions.add_parser("start", help="migrate if needed and serve the API and the UI")
        start.add_argument("--host", default="127.0.0.1", help="IPv4 address to listen on (default 127.0.0.1)")
        start.add_argument("--port", type=port_number, default=4200, help="TCP port (default 4200; 0 picks a free one)")
        start.add_argument(
            "--workers", type=worker_count, default=1, help="Daphne processes sharing the socket (default 1)"
        )
        start.add_argument("--access-log", action="store_true", help="print one line per request (slower)")

        database = actions.add_parser("database", help="reset or upgrade the database")
        database_actions = database.add_subparsers(dest="database_action", required=True, metavar="{reset,upgrade}")
        reset = database_actions.add_parser("reset", help="drop everything and re-apply the schema")
        reset.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
        database_actions.add_parser("upgrade", help="apply pending migrations")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "start":
            self.start(
                host=options["host"],
                port=options["port"],
                workers=options["workers"],
                access_log=options["access_log"],
            )
        elif options["database_action"] == "reset":
            self.reset(assume_yes=options["yes"])
        else:
            self.say(self.migrated_message(database_upgrade()))

    def say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()

    @staticmethod
    def migrated_message(applied: int) -> str:
        if not applied:
            return "database up to date"
        return f"database upgraded: applied {applied} migration{'s' if applied != 1 else ''}"

    def prepare_database(self) -> None:
        pending = pending_migrations()
        if pending:
            self.say(f"applying {pending} migration{'s' if pending != 1 else ''} to {database_label()} ...")
        self.say(self.migrated_message(database_upgrade()))
        password = first_admin_create()
        if password:
            self.say(f"created the admin user: username {ADMIN_USERNAME}, password {password}")
            self.say(
                f"  this password is shown only once; change it with `orchestrator changepassword {ADMIN_USERNAME}`"
            )

    def start(self, *, host: str, port: int, workers: int, access_log: bool) -> None:
        try:
            sock = bind(host, port)  # first, so a busy port fails before any other work
        except ServerError as exc:
            raise CommandError(str(exc)) from exc
        try:
            self.prepare_database()
        except BaseException:
            sock.close()
            raise
        # Workers open their own connections; the supervisor keeps none open while it waits.
        connections.close_all()
        shown_host = "127.0.0.1" if host == "0.0.0.0" else host
        base = f"http://{shown_host}:{sock.getsockname()[1]}"

        banner = [
            f"server started: {workers} worker{'s' if workers != 1 else ''} on {host}:{sock.getsockname()[1]}",
            f"API: {base}/api",
            f"UI:  {base}/admin/",
            "point clients at it with:",
            f"  orchestrator config set ORCHESTRATOR_API_URL={base}/api",
            "press Ctrl+C to stop",
        ]
        # From here on the process holds no Django: it becomes the lean supervisor of the Daphne workers.
        exec_supervisor(sock, workers=workers, access_log=access_log, banner=banner)

    def reset(self, *, assume_yes: bool) -> None:
        label = database_label()
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
        self.say("the admin user is created again on the next `orchestrator server start`")
