"""Settings resolution shared by the server, the CLI and the SDK, without importing Django.

A value comes from the environment, else from the active profile in `$ORCHESTRATOR_HOME/profiles.toml`,
else from its default. `orchestrator config set|unset|view` edit and show the profile file.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    help: str
    # A function returning an error message for a malformed value, or None when it is fine.
    validate: Callable[[str], str | None] | None = None


class ConfigError(Exception):
    """A setting holds a value that cannot be used; the message is one line naming it."""


def _validate_url(value: str, schemes: tuple[str, ...]) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        return f"unsupported scheme {parts.scheme or '(none)'!r}; expected one of {', '.join(schemes)}"
    if parts.scheme.startswith("http") and not parts.netloc:
        return "missing host"
    return None


def _validate_database_url(value: str) -> str | None:
    parts = urlsplit(value)
    scheme = parts.scheme.split("+")[0]
    if scheme == "sqlite":
        if not parts.path or parts.path == "/":
            return "a sqlite URL needs a file path, e.g. sqlite:////home/me/orchestrator.db"
        return None
    if scheme in ("postgres", "postgresql"):
        if not parts.hostname and "host=" not in parts.query:
            return "a postgresql URL needs a host, e.g. postgresql://postgres@127.0.0.1:5432/orchestrator"
        if not parts.path.strip("/"):
            return "a postgresql URL needs a database name, e.g. postgresql://postgres@127.0.0.1:5432/orchestrator"
        return None
    return f"unsupported scheme {parts.scheme or '(none)'!r}; use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"


def _validate_positive_number(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return f"{value!r} is not a number"
    if number <= 0:
        return "must be greater than 0"
    return None


def _validate_non_negative_number(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return f"{value!r} is not a number"
    if number < 0:
        return "must be 0 or more"
    return None


def _validate_positive_integer(value: str) -> str | None:
    if not value.strip().isdigit():
        return f"{value!r} is not a whole number"
    if int(value) <= 0:
        return "must be greater than 0"
    return None


def _validate_non_negative_integer(value: str) -> str | None:
    try:
        number = int(value)
    except ValueError:
        return f"{value!r} is not a whole number"
    if number < 0:
        return "must be 0 or more"
    return None


def _validate_bool(value: str) -> str | None:
    if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        return f"{value!r} is not a boolean (use true or false)"
    return None


def _validate_log_level(value: str) -> str | None:
    if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        return f"{value!r} is not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)"
    return None


def _validate_fernet_keys(value: str) -> str | None:
    """Each comma-separated key is 32 bytes in URL-safe base64 (what `Fernet.generate_key()` prints)."""
    import base64
    import binascii

    keys = [key.strip() for key in value.split(",") if key.strip()]
    if not keys:
        return "no key given; `python -c 'import cryptography.fernet as f; print(f.Fernet.generate_key().decode())'`"
    for position, key in enumerate(keys, start=1):
        try:
            raw = base64.urlsafe_b64decode(key.encode())
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            return f"key {position} is not a Fernet key (32 bytes in URL-safe base64)"
    return None


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting("ORCHESTRATOR_HOME", "~/.orchestrator", "home for the SQLite file, profiles, local storage"),
        Setting(
            "ORCHESTRATOR_API_URL",
            None,
            "API URL, e.g. http://127.0.0.1:4200/api; unset = ephemeral in-process mode",
            lambda v: _validate_url(v, ("http", "https")),
        ),
        Setting("ORCHESTRATOR_API_KEY", None, "sent as Authorization: Bearer <key>"),
        Setting(
            "ORCHESTRATOR_API_AUTH",
            "on",
            "on: the API requires a key (or a session); off: anyone may call it (loopback only, a warning at start)",
            _validate_bool,
        ),
        Setting(
            "ORCHESTRATOR_CLIENT_RETRIES",
            "5",
            "times a client request is sent again after no answer, a 5xx or a 429 (the SDK, the CLI, workers)",
            _validate_non_negative_integer,
        ),
        Setting(
            "ORCHESTRATOR_CLIENT_TIMEOUT_SECONDS",
            "30",
            "seconds a client request waits for the API's answer",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_CLIENT_CONNECT_TIMEOUT_SECONDS",
            "10",
            "seconds a client waits to open a connection to the API",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_CLIENT_BACKOFF_SECONDS",
            "0.1",
            "a client's first wait before sending a failed request again (doubled each time, with jitter)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_CLIENT_OUTAGE_SECONDS",
            "120",
            "seconds a client keeps retrying a server that answered it before and now refuses connections or "
            "answers 502/503/504 (a restart), past ORCHESTRATOR_CLIENT_RETRIES",
            _validate_non_negative_number,
        ),
        Setting(
            "ORCHESTRATOR_CLIENT_BACKOFF_CAP_SECONDS",
            "5",
            "the longest wait between two attempts of a client request",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_DATABASE_URL",
            None,
            "sqlite:///$ORCHESTRATOR_HOME/orchestrator.db (default) or postgresql://user@host:5432/db",
            _validate_database_url,
        ),
        Setting(
            "ORCHESTRATOR_BROKER_URL",
            None,
            "Celery broker, e.g. redis://127.0.0.1:6379/0; unset = embedded, no server needed",
            lambda v: _validate_url(v, ("redis", "rediss", "amqp", "amqps", "memory", "filesystem")),
        ),
        Setting(
            "ORCHESTRATOR_REDIS_URL",
            None,
            "Redis channel layer for live updates across processes and hosts",
            lambda v: _validate_url(v, ("redis", "rediss")),
        ),
        Setting("ORCHESTRATOR_DEBUG", "false", "Django debug mode (never in production)", _validate_bool),
        Setting("ORCHESTRATOR_SECRET_KEY", None, "Django secret key; generated into $ORCHESTRATOR_HOME when unset"),
        Setting(
            "ORCHESTRATOR_ENCRYPTION_KEY",
            None,
            "Fernet keys for block secrets, comma-separated, first encrypts; unset: $ORCHESTRATOR_HOME/encryption_key",
            _validate_fernet_keys,
        ),
        Setting(
            "ORCHESTRATOR_ALLOWED_HOSTS",
            None,
            "comma-separated host names the server answers to; unset: localhost, 127.0.0.1, [::1] and the host "
            "`server start` listens on (with 0.0.0.0 or ::, the machine's host name and FQDN)",
        ),
        Setting(
            "ORCHESTRATOR_HTTPS",
            "false",
            "true behind a TLS proxy that sets X-Forwarded-Proto: secure cookies, HSTS, http redirected to https",
            _validate_bool,
        ),
        Setting(
            "ORCHESTRATOR_SQLITE_BUSY_TIMEOUT",
            "30",
            "seconds a SQLite writer waits for the lock before failing",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_API_MAX_BODY_BYTES",
            "10485760",
            "largest request body the API accepts (bytes)",
            _validate_positive_number,
        ),
        Setting("ORCHESTRATOR_LOGGING_LEVEL", "INFO", "log level of the server and the SDK", _validate_log_level),
        Setting(
            "ORCHESTRATOR_SCHEDULER_HORIZON_SECONDS",
            "86400",
            "how far ahead the scheduler creates runs (seconds, from 3600 to 8640000)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_SCHEDULER_MIN_RUNS",
            "3",
            "runs the scheduler keeps ahead per schedule even past the horizon",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_SCHEDULER_MAX_RUNS",
            "100",
            "most runs the scheduler creates ahead per schedule",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_LATE_RUNS_GRACE_SECONDS",
            "15",
            "seconds past its scheduled time before a Scheduled run is marked Late",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_SERVE_POLL_SECONDS",
            "2",
            "how often `flow.serve()` looks for due runs of its deployment (seconds)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_WORKER_POLL_SECONDS",
            "1",
            "how often a worker asks its work pool for due runs (seconds)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_WORKER_PREFETCH_SECONDS",
            "10",
            "how far ahead a worker fetches runs and holds them until their start time (seconds)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS",
            "2",
            "how often a worker with runs in progress sends a heartbeat and learns of cancellations (seconds)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_WORKER_KILL_GRACE_SECONDS",
            "3",
            "seconds between SIGTERM and SIGKILL when a worker stops a run's process",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_CELERY_DISPATCH_HORIZON_SECONDS",
            "3600",
            "how far ahead a celery pool's runs are sent to their Celery queue (seconds; later ones are sent later)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_EVENTS_POLL_SECONDS",
            "0.05",
            "how often each server process looks for new events for its consumers (seconds; its own commits wake it)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_UI_URL",
            None,
            "the server's public address for links in notifications, e.g. https://orchestrator.example.com; "
            "unset: the address `server start` listens on",
            lambda v: _validate_url(v, ("http", "https")),
        ),
        Setting(
            "ORCHESTRATOR_NOTIFICATIONS_ATTEMPTS",
            "5",
            "times a notification is sent before its delivery is marked failed",
            _validate_positive_integer,
        ),
        Setting(
            "ORCHESTRATOR_NOTIFICATIONS_RETRY_SECONDS",
            "2",
            "wait before a failed notification is sent again (doubled after each attempt)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_NOTIFICATIONS_RETRY_MAX_SECONDS",
            "300",
            "the longest wait between two attempts of a notification",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_NOTIFICATIONS_TIMEOUT_SECONDS",
            "10",
            "seconds a webhook call or an SMTP conversation may take",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_NOTIFICATIONS_POLL_SECONDS",
            "0.5",
            "how often each server process looks for notifications due (retries, other processes' deliveries)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_SERVER_STOP_GRACE_SECONDS",
            "10",
            "seconds `server start`'s processes get to finish their work on Ctrl+C or SIGTERM before they are killed",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_SERVER_STARTUP_SECONDS",
            "10",
            "a server process that exits sooner than this after its start stops the server instead of restarting",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_SERVICES_CONCURRENCY",
            "4",
            "threads of the server services' Celery worker (services that can run at once)",
            _validate_positive_integer,
        ),
        Setting(
            "ORCHESTRATOR_BROKER_POLL_SECONDS",
            "0.5",
            "how often a Celery worker on the embedded broker looks for new messages (seconds)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_RETENTION_DAYS",
            "30",
            "the retention service deletes finished runs, logs, events and other records older than this (days; "
            "0 keeps everything)",
            _validate_non_negative_integer,
        ),
        Setting(
            "ORCHESTRATOR_RETENTION_BATCH_SIZE",
            "500",
            "rows the retention service deletes per transaction (short transactions keep SQLite's lock free)",
            _validate_positive_integer,
        ),
        Setting(
            "ORCHESTRATOR_RETENTION_PASS_SECONDS",
            "60",
            "the most time one retention pass spends deleting; the next pass continues (seconds)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_SERVICE_LEASE_SECONDS",
            "15",
            "SQLite: how long a killed server's service pass holds the service back (seconds; PostgreSQL frees it "
            "at once)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_WORKER_HEARTBEAT_TIMEOUT_SECONDS",
            "30",
            "a worker not heard from for this long is offline; the server then crashes or cancels its runs (seconds)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_CONCURRENCY_LEASE_SECONDS",
            "30",
            "a concurrency slot whose holder stops renewing it frees after this long (seconds, at least 1)",
            _validate_positive_number,
        ),
        Setting(
            "ORCHESTRATOR_UI_WAITING_REFRESH_SECONDS",
            "3",
            "how often a run page re-reads why its run is waiting while it waits (seconds)",
            _validate_positive_number,
        ),
    ]
}

ENV = "env"
PROFILE = "profile"
DEFAULT = "default"


def home() -> Path:
    raw = os.environ.get("ORCHESTRATOR_HOME") or SETTINGS["ORCHESTRATOR_HOME"].default or "~/.orchestrator"
    return Path(raw).expanduser()


# The home holds the database, the secret key and profiles with API keys: its owner's only.
HOME_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# `server start` tells its worker processes the host it listens on (their default ALLOWED_HOSTS) in this variable.
LISTEN_HOST_VARIABLE = "ORCHESTRATOR_SERVER_LISTEN_HOST"
# ... and the address it is reached at (the default of ORCHESTRATOR_UI_URL for the links in notifications).
BASE_URL_VARIABLE = "ORCHESTRATOR_SERVER_BASE_URL"


def home_ensure() -> Path:
    """ORCHESTRATOR_HOME, created (with its parents) readable by its owner only if it does not exist."""
    path = home()
    if not path.exists():
        path.mkdir(mode=HOME_MODE, parents=True, exist_ok=True)
    return path


def private_file_write(path: Path, text: str) -> None:
    """Write `path` readable by its owner only, from the first byte written (the file may hold a secret)."""
    tmp = path.with_name(path.name + ".tmp")
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(file.fileno(), PRIVATE_FILE_MODE)  # the mode given to open() is only for a new file
        file.write(text)
    tmp.replace(path)


def listen_host() -> str | None:
    """The host `server start` listens on, in its worker processes (None elsewhere)."""
    return os.environ.get(LISTEN_HOST_VARIABLE) or None


def server_base_url() -> str | None:
    """The address `server start` is reached at, e.g. http://127.0.0.1:4200, in its worker processes."""
    return os.environ.get(BASE_URL_VARIABLE) or None


def profiles_path() -> Path:
    return home() / "profiles.toml"


def _read_profiles() -> dict:
    path = profiles_path()
    if not path.exists():
        return {"active": "default", "profiles": {"default": {}}}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid profile file ({exc})") from exc
    data.setdefault("active", "default")
    data.setdefault("profiles", {}).setdefault(data["active"], {})
    return data


def _write_profiles(data: dict) -> None:
    home_ensure()
    path = profiles_path()
    lines = [f"active = {json.dumps(data['active'])}", ""]
    for profile, values in data["profiles"].items():
        lines.append(f"[profiles.{json.dumps(profile)}]")
        lines.extend(f"{key} = {json.dumps(str(value))}" for key, value in sorted(values.items()))
        lines.append("")
    private_file_write(path, "\n".join(lines))  # the profile may hold an API key


def active_profile() -> tuple[str, dict]:
    data = _read_profiles()
    return data["active"], data["profiles"][data["active"]]


def resolve(name: str) -> tuple[str | None, str]:
    """Return (value, source) for a setting; source is env, profile or default."""
    setting = SETTINGS[name]
    if os.environ.get(name):
        return os.environ[name], ENV
    if name != "ORCHESTRATOR_HOME":
        _, values = active_profile()
        if values.get(name):
            return str(values[name]), PROFILE
    if name == "ORCHESTRATOR_DATABASE_URL":
        return get_default_database_url(), DEFAULT
    return setting.default, DEFAULT


def get_default_database_url() -> str:
    return f"sqlite:///{home() / 'orchestrator.db'}"


def get(name: str) -> str | None:
    return resolve(name)[0]


def get_bool(name: str) -> bool:
    return (get(name) or "").lower() in ("1", "true", "yes", "on")


def problems() -> list[str]:
    """One line per malformed setting, naming it and saying what is wrong."""
    found = []
    try:
        _read_profiles()
    except ConfigError as exc:
        return [str(exc)]
    for setting in SETTINGS.values():
        value, source = resolve(setting.name)
        if value is None or setting.validate is None:
            continue
        message = setting.validate(value)
        if message:
            found.append(f"{setting.name} ({source}): {message}")
    return found


def set_values(pairs: dict[str, str]) -> None:
    for key in pairs:
        if key not in SETTINGS or key == "ORCHESTRATOR_HOME":
            raise ConfigError(f"unknown setting {key!r}; `orchestrator config view` lists them")
        validate = SETTINGS[key].validate
        message = validate(pairs[key]) if validate else None
        if message:
            raise ConfigError(f"{key}: {message}")
    data = _read_profiles()
    data["profiles"][data["active"]].update(pairs)
    _write_profiles(data)


def unset_values(keys: list[str]) -> None:
    data = _read_profiles()
    for key in keys:
        if key not in SETTINGS:
            raise ConfigError(f"unknown setting {key!r}; `orchestrator config view` lists them")
        data["profiles"][data["active"]].pop(key, None)
    _write_profiles(data)


_PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def profiles() -> tuple[str, list[str]]:
    """(the active profile, every profile's name in the file's order)."""
    data = _read_profiles()
    return data["active"], list(data["profiles"])


def profile_create(name: str, *, copy_from: str | None = None) -> None:
    """A new profile, empty or with the settings of `copy_from`; it does not become active."""
    if not _PROFILE_NAME.fullmatch(name):
        raise ConfigError(f"{name!r} is not a profile name: use letters, digits, '-', '_' and '.' (at most 64)")
    data = _read_profiles()
    if name in data["profiles"]:
        raise ConfigError(f"profile {name!r} exists already; `orchestrator config profile use {name}` activates it")
    if copy_from is not None and copy_from not in data["profiles"]:
        raise ConfigError(f"no profile {copy_from!r} to copy; `orchestrator config profile ls` lists them")
    data["profiles"][name] = dict(data["profiles"][copy_from]) if copy_from else {}
    _write_profiles(data)


def profile_use(name: str) -> None:
    """Make `name` the active profile: every later command reads its settings."""
    data = _read_profiles()
    if name not in data["profiles"]:
        raise ConfigError(f"no profile {name!r}; create it with `orchestrator config profile create {name}`")
    data["active"] = name
    _write_profiles(data)


def profile_delete(name: str) -> None:
    """Remove a profile that is not the active one."""
    data = _read_profiles()
    if name not in data["profiles"]:
        raise ConfigError(f"no profile {name!r}; `orchestrator config profile ls` lists them")
    if name == data["active"]:
        raise ConfigError(f"profile {name!r} is active; `orchestrator config profile use OTHER` first")
    del data["profiles"][name]
    _write_profiles(data)


def profile_settings(name: str) -> dict[str, str]:
    """The settings a profile holds."""
    return dict(_read_profiles()["profiles"].get(name, {}))
