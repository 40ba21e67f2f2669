"""`orchestrator global-concurrency-limit create|ls|inspect|reset|delete`: global concurrency limits.

Code takes their slots with `with concurrency("NAME"):`; with `--slot-decay-per-second` a limit is also a rate
limit for `rate_limit("NAME")`. `reset` frees every slot.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from django.core.management.base import CommandParser

from apps.core.management.base import OneLineErrorParser, OrchestratorCommand
from orchestrator.client import get_client

MAX_LIMIT = 1_000_000


def slot_count(value: str) -> int:
    if not value.isdigit() or int(value) > MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of slots from 0 to {MAX_LIMIT}")
    return int(value)


def decay_rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not math.isfinite(rate) or rate <= 0 or rate > MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of slots per second")
    return rate


class Command(OrchestratorCommand):
    help = "Create, list, inspect, reset and delete global concurrency limits (and rate limits)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, parser_class=OneLineErrorParser, metavar="{create,ls,inspect,reset,delete}"
        )
        create = actions.add_parser("create", help="a limit of N slots named NAME")
        create.add_argument("name", metavar="NAME")
        create.add_argument("limit", metavar="N", type=slot_count, help="slots")
        create.add_argument(
            "--slot-decay-per-second", type=decay_rate, default=None, metavar="R", help="make it a rate limit"
        )
        actions.add_parser("ls", help="list limits: name, slots in use, limit, decay")
        actions.add_parser("inspect", help="a limit and who holds its slots").add_argument("name", metavar="NAME")
        actions.add_parser("reset", help="free every slot of a limit").add_argument("name", metavar="NAME")
        actions.add_parser("delete", help="delete a limit").add_argument("name", metavar="NAME")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        client = get_client()
        if action == "create":
            created = client.create_global_concurrency_limit(
                options["name"], options["limit"], slot_decay_per_second=options["slot_decay_per_second"]
            )
            rate = created["slot_decay_per_second"]
            decay = f", decaying at {rate:g} slot(s)/s" if rate else ""
            self.stdout.write(
                f"Created global concurrency limit {created['name']!r}: {created['limit']} slot(s){decay}."
            )
        elif action == "ls":
            self.print_table(
                ("name", "in use", "limit", "decay/s", "updated"),
                (
                    (
                        row["name"],
                        row["active_slots"],
                        row["limit"],
                        row["slot_decay_per_second"] or "-",
                        row["updated"],
                    )
                    for row in client.read_global_concurrency_limits()
                ),
            )
        elif action == "inspect":
            limit = client.read_global_concurrency_limit(options["name"])
            self.stdout.write(f"name:     {limit['name']}")
            self.stdout.write(f"limit:    {limit['limit']}")
            self.stdout.write(f"decay/s:  {limit['slot_decay_per_second'] or '-'}")
            self.stdout.write(f"in use:   {limit['active_slots']}")
            self.stdout.write(f"created:  {limit['created']}")
            self.stdout.write(f"updated:  {limit['updated']}")
            self.stdout.write("held by:" if limit["holders"] else "held by:  nobody")
            for holder in limit["holders"]:
                self.stdout.write(
                    f"  {holder['kind']} {holder['id']}: {holder['slots']} slot(s) until {holder['expires_at']}"
                )
        elif action == "reset":
            limit = client.reset_global_concurrency_limit(options["name"])
            self.stdout.write(
                f"Freed every slot of global concurrency limit {limit['name']!r} (limit {limit['limit']})."
            )
        else:
            client.delete_global_concurrency_limit(options["name"])
            self.stdout.write(f"Deleted global concurrency limit {options['name']!r}.")
