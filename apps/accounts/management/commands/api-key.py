"""`orchestrator api-key create|ls|revoke`: the keys that let clients, workers and scripts call the API.

`create` prints the key alone on its last line (`KEY=$(orchestrator api-key create ci | tail -1)`); it is shown
once and stored hashed. Needs an admin key (or the in-process mode, on the server's own machine).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from apps.core.management.base import OneLineErrorParser, OrchestratorCommand
from orchestrator.client import get_client

SCOPES = ("read", "write", "admin")


def expiry_days(value: str) -> int:
    import argparse

    if not value.isdigit() or not 1 <= int(value) <= 3650:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days from 1 to 3650")
    return int(value)


class Command(OrchestratorCommand):
    help = "Create, list and revoke API keys (read, write or admin scope)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, parser_class=OneLineErrorParser, metavar="{create,ls,revoke}"
        )
        create = actions.add_parser("create", help="create a key; it is printed once, on the last line")
        create.add_argument("name", metavar="NAME", help="what the key is for, e.g. worker-eu-1")
        create.add_argument(
            "--scope",
            choices=SCOPES,
            default="write",
            help="read: GET only; write (default): what clients, workers and deploy need; admin: also keys",
        )
        create.add_argument("--expires-in", type=expiry_days, metavar="DAYS", help="days until it stops working")
        ls = actions.add_parser("ls", help="list keys: prefix, name, scope, status, last use")
        ls.add_argument("--all", action="store_true", help="also revoked keys")
        actions.add_parser("revoke", help="revoke a key by name: it stops working").add_argument("name", metavar="NAME")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        client = get_client()
        if action == "create":
            created = client.create_api_key(
                options["name"], scope=options["scope"], expires_in_days=options["expires_in"]
            )
            expiry = f", expires {created['expires_at']}" if created.get("expires_at") else ""
            self.stdout.write(f"Created API key {created['name']!r} (scope {created['scope']}{expiry}).")
            self.stdout.write("Copy it now: it is not shown again. Clients read it from ORCHESTRATOR_API_KEY.")
            self.stdout.write(created["key"])
        elif action == "ls":
            keys = client.read_api_keys(active=None if options["all"] else True)
            self.print_table(
                ("prefix", "name", "scope", "status", "expires", "last used", "owner"),
                (
                    (
                        f"{row['prefix']}…",
                        row["name"],
                        row["scope"],
                        row["status"],
                        row["expires_at"] or "never",
                        row["last_used_at"] or "never",
                        row["owner"] or "",
                    )
                    for row in keys
                ),
            )
        else:
            client.revoke_api_key(options["name"])
            self.stdout.write(f"Revoked API key {options['name']!r}: it no longer works.")
