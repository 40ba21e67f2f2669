"""The `orchestrator` command: every verb is a Django management command (also `python manage.py VERB`).

Before Django starts, malformed settings are reported as one line each with a non-zero exit, so a typo
in a URL never becomes a traceback.
"""

from __future__ import annotations

import os
import sys

# Verbs that work with a broken configuration (they are how you fix it).
CONFIG_SAFE_VERBS = {"config", "version", "help", "--help", "-h"}


def _fail(message: str, code: int = 1) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    from orchestrator import config

    verb = argv[0] if argv else "help"
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
    try:
        execute_from_command_line(["orchestrator", *argv])
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else _fail(str(exc.code)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
