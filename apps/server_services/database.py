"""The database as `server database reset|upgrade` and `server start` handle it: who else uses it (a reset under
a running server loses everything written after it), and a PostgreSQL database that does not exist yet."""

from __future__ import annotations

import os
from pathlib import Path

from django.db import connection

# Processes that hold the database are named by their command line, cut to this length.
COMMAND_LINE_CHARS = 120


def _command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    text = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return text[:COMMAND_LINE_CHARS] or "?"


def sqlite_holders(database_file: Path) -> list[str]:
    """Other processes of this machine with the SQLite file (or its WAL) open, as "PID (command line)"."""
    names = {str(database_file.resolve()) + suffix for suffix in ("", "-wal", "-shm")}
    found: list[str] = []
    me = os.getpid()
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            targets = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:  # gone, or not ours to look at
            continue
        if targets & names:
            found.append(f"{entry.name} ({_command_line(int(entry.name))})")
    return sorted(found)


def postgresql_holders() -> list[str]:
    """Other sessions connected to this PostgreSQL database, as "PID (application, client address)"."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name, client_addr FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        rows = cursor.fetchall()
    return [
        f"{pid} ({application or 'no application name'}, {address or 'local socket'})"
        for pid, application, address in rows
    ]


def database_holders() -> list[str]:
    """Who else uses the configured database right now (empty: nobody, a reset is safe)."""
    if connection.vendor == "sqlite":
        return sqlite_holders(Path(str(connection.settings_dict["NAME"])))
    if connection.vendor == "postgresql":
        return postgresql_holders()
    return []


def postgresql_database_create_if_missing() -> str | None:
    """On PostgreSQL, create the configured database when it does not exist and the role may; return what was
    done (None: nothing to do). A role that may not create it gets the exact command to run instead."""
    if connection.vendor != "postgresql":
        return None
    import psycopg
    from django.core.management.base import CommandError

    settings_dict = connection.settings_dict
    name = settings_dict["NAME"]
    try:
        connection.ensure_connection()
        return None
    except Exception as exc:  # the driver's error, wrapped by Django: only "does not exist" is ours to fix
        if "does not exist" not in str(exc) or f'"{name}"' not in str(exc):
            raise
    params = {
        "dbname": "postgres",
        "user": settings_dict.get("USER") or None,
        "password": settings_dict.get("PASSWORD") or None,
        "host": settings_dict.get("HOST") or None,
        "port": settings_dict.get("PORT") or None,
    }
    conninfo = psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
    try:
        with psycopg.connect(conninfo, autocommit=True) as maintenance:
            maintenance.execute(f'CREATE DATABASE "{name.replace(chr(34), "")}"')
    except psycopg.Error as exc:
        host = settings_dict.get("HOST") or "localhost"
        user = settings_dict.get("USER") or os.environ.get("USER", "postgres")
        reason = str(exc).strip().splitlines()[0]
        raise CommandError(
            f"PostgreSQL database {name!r} does not exist and could not be created ({reason}); "
            f"create it with: createdb -h {host} -U {user} {name}"
        ) from None
    connection.close()
    return f"created PostgreSQL database {name!r}"


def database_size() -> int:
    """Bytes the configured database takes: the SQLite file with its WAL, or PostgreSQL's pg_database_size."""
    if connection.vendor == "sqlite":
        name = str(connection.settings_dict["NAME"])
        return sum(Path(name + suffix).stat().st_size for suffix in ("", "-wal") if Path(name + suffix).exists())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return int(cursor.fetchone()[0])


def database_vacuum(*, full: bool = False) -> tuple[int, int]:
    """Give the space of deleted rows back; return the database size (bytes) before and after.

    SQLite: VACUUM rewrites the file without its free pages, and the WAL is checkpointed and truncated before and
    after. PostgreSQL: VACUUM (ANALYZE) on each of our tables marks dead rows' space reusable (and gives back
    empty pages at a table's end) without blocking reads or writes; `full` rewrites each table (VACUUM FULL)
    and so gives all the space back to the file system, holding an exclusive lock on the table meanwhile.
    VACUUM cannot run in a transaction: Django's connection is in autocommit mode here.
    """
    before = database_size()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.execute("VACUUM")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            options = "FULL, ANALYZE" if full else "ANALYZE"
            for table in sorted(connection.introspection.django_table_names(only_existing=True)):
                cursor.execute(f"VACUUM ({options}) {connection.ops.quote_name(table)}")
    return before, database_size()
