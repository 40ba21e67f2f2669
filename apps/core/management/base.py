"""What every `orchestrator VERB` shares: errors as one `error: ...` line, and aligned tables with rich."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser, SystemCheckError
from django.db import DatabaseError
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.client.errors import ClientError

MASK = "********"


def mask_url_password(url: str | None) -> str | None:
    """The URL with any password replaced by asterisks, so it can be printed or logged."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    credentials = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}:{MASK}@{netloc[1]}"))


def database_label() -> str:
    """The database this process uses, as its URL with the password masked (for messages)."""
    from orchestrator import config

    try:
        url, _ = config.resolve("ORCHESTRATOR_DATABASE_URL")
    except config.ConfigError:
        url = config.get_default_database_url()
    return mask_url_password(url) or ""


def first_line(exc: BaseException) -> str:
    """Database drivers write several lines; the first one says what went wrong."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return exc.__class__.__name__


def database_problem(exc: DatabaseError) -> str:
    """One line for a failed query; a database that was never migrated gets the command that sets it up."""
    try:
        from django.db import connection
        from django.db.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(connection)
        pending = len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    except Exception:  # the database cannot even be asked: its own error says why
        pending = 0
    if pending:
        return (
            f"the database is not set up ({pending} migrations pending); "
            "run `orchestrator server database upgrade` or `orchestrator server start`"
        )
    return f"database: {first_line(exc)}"


class OneLineErrorParser(CommandParser):
    """Usage mistakes are one `error: ...` line pointing at --help, instead of the usage text and the error."""

    def error(self, message: str) -> None:
        if self.called_from_command_line:
            self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")
        super().error(message)


class OrchestratorCommand(BaseCommand):
    """A management command whose failures print `error: <one line>` and exit non-zero, never a traceback."""

    # Django's options for its own tooling stay accepted but out of `--help`: they say nothing to our users.
    suppressed_base_arguments = {
        "--version",
        "-v",
        "--verbosity",
        "--settings",
        "--pythonpath",
        "--traceback",
        "--no-color",
        "--force-color",
        "--skip-checks",
    }

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django builds a plain CommandParser; the subclass only changes how errors print. Commands with
        # sub-verbs pass `parser_class=OneLineErrorParser` to add_subparsers (add_arguments runs before this).
        parser.__class__ = OneLineErrorParser
        for action in parser._actions:  # Django adds --skip-checks outside suppressed_base_arguments
            if "--skip-checks" in action.option_strings:
                action.help = argparse.SUPPRESS
        return parser

    def execute(self, *args: Any, **options: Any) -> Any:
        if not self._called_from_command_line or options.get("traceback"):
            return super().execute(*args, **options)
        try:
            return super().execute(*args, **options)
        except SystemCheckError:
            raise  # Django formats the list of check errors itself.
        except CommandError as exc:
            self.stderr.write(f"error: {exc}")
            sys.exit(exc.returncode)
        except ClientError as exc:  # the API refused, failed or could not be reached: the client's one line
            self.stderr.write(f"error: {exc}")
            sys.exit(1)
        except DatabaseError as exc:
            self.stderr.write(f"error: {database_problem(exc)}")
            sys.exit(1)

    @property
    def console(self) -> Console:
        """A rich console on this command's stdout; wide when piped so tables are never wrapped."""
        out = getattr(self.stdout, "_out", self.stdout)
        interactive = out is not None and hasattr(out, "isatty") and out.isatty()
        return Console(file=out, width=None if interactive else 1000, highlight=False, markup=False, emoji=False)

    def _print_renderable(self, renderable: Any) -> None:
        console = self.console
        if console.is_terminal:
            console.print(renderable)
            return
        # Piped output is read by scripts and diffs: no padding after the last column.
        with console.capture() as captured:
            console.print(renderable)
        self.stdout.write("\n".join(line.rstrip() for line in captured.get().splitlines()))

    def print_table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
        """Print rows as an aligned table; cells are plain text (brackets in names are not markup)."""
        table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False, show_edge=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
        self._print_renderable(table)
