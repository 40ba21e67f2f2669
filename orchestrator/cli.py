"""The `orchestrator` command: every verb is a Django management command (also `python manage.py VERB`).

`orchestrator` (or `--help`) lists the orchestrator's own command groups, each with one line of help; Django's
commands stay reachable under `orchestrator django ...` (and by their bare names, e.g. `changepassword`), out
of the way. Before Django starts, malformed settings are reported as one line each with a non-zero exit, so a
typo in a URL never becomes a traceback.
"""

from __future__ import annotations

import os
import sys

# Verbs that work with a broken configuration (they are how you fix it).
CONFIG_SAFE_VERBS = {"config", "version", "help", "--help", "-h"}
HELP_VERBS = {"help", "--help", "-h"}
# How the command groups are listed: the everyday ones first, then the rest alphabetically.
GROUP_ORDER = ["server", "config", "deploy", "deployment", "flow-run", "work-pool", "work-queue", "worker", "agent"]
# Management commands of our apps that are not for users to call.
HIDDEN_VERBS = {"orchestrator-version"}
# Django's user commands: on a fresh home they need the schema first (as `server start` makes it).
SCHEMA_VERBS = {"createsuperuser", "changepassword"}


def own_commands() -> list[tuple[str, str]]:
    """(verb, one-line help) for every command of the orchestrator's apps, in GROUP_ORDER then by name."""
    from django.core.management import get_commands, load_command_class

    found = []
    for verb, app in get_commands().items():
        if not app.startswith("apps.") or verb in HIDDEN_VERBS:
            continue
        help_text = (load_command_class(app, verb).help or "").strip().splitlines()
        found.append((verb, help_text[0] if help_text else ""))
    found.append(("version", "Show the orchestrator, API, Django and Python versions and the database in use."))
    found.append(("django", "Django's own management commands (migrate, createsuperuser, shell, ...)."))
    rank = {verb: index for index, verb in enumerate(GROUP_ORDER)}
    return sorted(found, key=lambda item: (rank.get(item[0], len(rank)), item[0]))


def print_help() -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, markup=False, emoji=False, width=None if sys.stdout.isatty() else 120)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, show_header=True)
    table.add_column("command", no_wrap=True)
    table.add_column("what it does")
    for verb, text in own_commands():
        table.add_row(Text(verb), Text(text))
    with console.capture() as captured:
        console.print(table)
    lines = [line.rstrip() for line in captured.get().splitlines()]
    sys.stdout.write(
        "Usage: orchestrator COMMAND [ARGS]...   (`orchestrator COMMAND --help` for one command)\n\n"
        "Workflow orchestration for Python teams: flows, deployments, work pools and workers.\n\n"
        + "\n".join(lines)
        + "\n"
    )


def _fail(message: str, code: int = 1) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    from orchestrator import config

    if not argv:
        argv = ["help"]
    verb = argv[0]
    if verb not in CONFIG_SAFE_VERBS:
        problems = config.problems()
        if problems:
            for problem in problems:
                name = problem.split(" ", 1)[0]
                hint = f"; fix it with `orchestrator config set {name}=...`" if " (profile): " in problem else ""
                sys.stderr.write(f"error: {problem}{hint}\n")
            return 2
    if verb == "version":
        argv[0] = "orchestrator-version"

    import django
    from django.core.management import execute_from_command_line

    try:
        django.setup()
    except Exception as exc:  # a broken install or settings module: say it in one line
        return _fail(f"cannot start: {exc}")
    if verb in HELP_VERBS:
        if len(argv) > 1:  # `orchestrator help deploy`
            argv = [argv[1], "--help"]
        else:
            print_help()
            return 0
    elif verb == "django":
        argv = argv[1:] or ["help"]  # `orchestrator django` lists Django's commands
    try:
        if argv[0] in SCHEMA_VERBS:
            from django.core.management import call_command

            call_command("migrate", interactive=False, verbosity=0)
        execute_from_command_line(["orchestrator", *argv])
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else _fail(str(exc.code)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
