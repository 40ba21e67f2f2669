"""`orchestrator config set|unset|view`: edit and show the settings kept in the active profile;
`orchestrator config profile ls|create|use|delete`: manage the profiles themselves (one per server, say)."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import CommandError, CommandParser

from apps.core.management.base import MASK, OneLineErrorParser, OrchestratorCommand, mask_url_password
from orchestrator import config

# Values never printed in full: they are credentials.
SECRET_SETTINGS = {"ORCHESTRATOR_API_KEY", "ORCHESTRATOR_SECRET_KEY"}


def displayed_value(name: str, value: str | None) -> str:
    """The value as `config view` shows it: secrets masked, database passwords masked, unset as empty."""
    if value is None or value == "":
        return ""
    if name in SECRET_SETTINGS:
        return MASK
    if name == "ORCHESTRATOR_DATABASE_URL":
        return mask_url_password(value) or ""
    return value


def parse_assignments(items: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise CommandError(f"{item!r} is not KEY=VALUE (e.g. ORCHESTRATOR_API_URL=http://127.0.0.1:4200/api)")
        if not value.strip():
            raise CommandError(
                f"{key.strip()}: empty value; use `orchestrator config unset {key.strip()}` to remove it"
            )
        pairs[key.strip()] = value.strip()
    return pairs


class Command(OrchestratorCommand):
    help = "Show and change settings (environment > active profile > default)."
    # These verbs are how a broken configuration gets fixed, so they never refuse to start over one.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, parser_class=OneLineErrorParser, metavar="{set,unset,view,profile}"
        )
        set_parser = actions.add_parser("set", help="save KEY=VALUE pairs in the active profile")
        set_parser.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
        unset_parser = actions.add_parser("unset", help="remove keys from the active profile")
        unset_parser.add_argument("keys", nargs="+", metavar="KEY")
        actions.add_parser("view", help="show every setting, its value and where it comes from")
        profile = actions.add_parser("profile", help="list, create, activate and delete profiles")
        verbs = profile.add_subparsers(
            dest="profile_action", required=True, parser_class=OneLineErrorParser, metavar="{ls,create,use,delete}"
        )
        verbs.add_parser("ls", help="list the profiles; * marks the active one")
        create = verbs.add_parser("create", help="create a profile (empty, or a copy with --from)")
        create.add_argument("name")
        create.add_argument("--from", dest="copy_from", metavar="PROFILE", help="copy this profile's settings")
        use = verbs.add_parser("use", help="make a profile the active one")
        use.add_argument("name")
        delete = verbs.add_parser("delete", help="delete a profile that is not active")
        delete.add_argument("name")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            if action == "set":
                self.set(parse_assignments(options["assignments"]))
            elif action == "unset":
                self.unset(options["keys"])
            elif action == "profile":
                self.profile(options["profile_action"], options.get("name", ""), options.get("copy_from"))
            else:
                self.view()
        except config.ConfigError as exc:
            raise CommandError(str(exc)) from exc

    def set(self, pairs: dict[str, str]) -> None:
        config.set_values(pairs)
        profile, _ = config.active_profile()
        for key, value in pairs.items():
            self.stdout.write(f"set {key}={displayed_value(key, value)} in profile {profile!r}")
            if os.environ.get(key):
                self.stderr.write(f"note: the environment variable {key} is set and takes precedence over the profile")
        self.stdout.write(f"saved to {config.profiles_path()}")

    def unset(self, keys: list[str]) -> None:
        _, before = config.active_profile()
        config.unset_values(keys)
        profile, _ = config.active_profile()
        for key in keys:
            if key in before:
                self.stdout.write(f"unset {key} in profile {profile!r}")
            else:
                self.stdout.write(f"{key} was not set in profile {profile!r}")

    def profile(self, action: str, name: str, copy_from: str | None) -> None:
        if action == "ls":
            active, names = config.profiles()
            self.print_table(
                ("", "profile", "settings"),
                [("*" if profile == active else "", profile, self._count(profile)) for profile in names],
            )
        elif action == "create":
            config.profile_create(name, copy_from=copy_from)
            source = f" from {copy_from!r}" if copy_from else ""
            self.stdout.write(
                f"created profile {name!r}{source}; `orchestrator config profile use {name}` activates it"
            )
        elif action == "use":
            config.profile_use(name)
            self.stdout.write(f"profile {name!r} is active")
        else:
            config.profile_delete(name)
            self.stdout.write(f"deleted profile {name!r}")

    def _count(self, profile: str) -> int:
        return len(config.profile_settings(profile))

    def view(self) -> None:
        profile, _ = config.active_profile()
        rows = []
        for name in config.SETTINGS:
            value, source = config.resolve(name)
            rows.append((name, displayed_value(name, value), source))
        self.print_table(
            ("setting", "value", "source"), rows, title=f"active profile: {profile} ({config.profiles_path()})"
        )
        for problem in config.problems():
            self.stderr.write(f"warning: {problem}")
