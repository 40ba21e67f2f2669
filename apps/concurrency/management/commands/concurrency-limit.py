"""`orchestrator concurrency-limit create|ls|inspect|reset|delete`: tag concurrency limits.

At most N task runs carrying the tag run at once; the others wait for a slot. `reset` frees every slot (runs
whose process died while holding one).
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandParser

from apps.core.management.base import OneLineErrorParser, OrchestratorCommand
from orchestrator.client import get_client

MAX_LIMIT = 1_000_000


def slot_count(value: str) -> int:
    if not value.isdigit() or int(value) > MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of slots from 0 to {MAX_LIMIT}")
    return int(value)


class Command(OrchestratorCommand):
    help = "Create, list, inspect, reset and delete tag concurrency limits."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, parser_class=OneLineErrorParser, metavar="{create,ls,inspect,reset,delete}"
        )
        create = actions.add_parser("create", help="limit the task runs with TAG running at once to N")
        create.add_argument("tag", metavar="TAG")
        create.add_argument("limit", metavar="N", type=slot_count, help="slots (0 stops every task run with the tag)")
        actions.add_parser("ls", help="list limits: tag, slots in use, limit")
        inspect = actions.add_parser("inspect", help="a limit and the task runs holding its slots")
        inspect.add_argument("tag", metavar="TAG")
        actions.add_parser("reset", help="free every slot of a limit").add_argument("tag", metavar="TAG")
        actions.add_parser("delete", help="delete a limit").add_argument("tag", metavar="TAG")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        client = get_client()
        if action == "create":
            created = client.create_concurrency_limit(options["tag"], options["limit"])
            self.stdout.write(f"Created concurrency limit {created['tag']!r}: {created['limit']} slot(s).")
        elif action == "ls":
            self.print_table(
                ("tag", "in use", "limit", "updated"),
                (
                    (row["tag"], len(row["active_slots"]), row["limit"], row["updated"])
                    for row in client.read_concurrency_limits()
                ),
            )
        elif action == "inspect":
            limit = client.read_concurrency_limit(options["tag"])
            self.stdout.write(f"tag:      {limit['tag']}")
            self.stdout.write(f"limit:    {limit['limit']}")
            self.stdout.write(f"in use:   {len(limit['active_slots'])}")
            self.stdout.write(f"created:  {limit['created']}")
            self.stdout.write(f"updated:  {limit['updated']}")
            self.stdout.write("held by task runs:" if limit["active_slots"] else "held by task runs: none")
            for task_run_id in limit["active_slots"]:
                self.stdout.write(f"  {task_run_id}")
        elif action == "reset":
            limit = client.reset_concurrency_limit(options["tag"])
            self.stdout.write(f"Freed every slot of concurrency limit {limit['tag']!r} (limit {limit['limit']}).")
        else:
            client.delete_concurrency_limit(options["tag"])
            self.stdout.write(f"Deleted concurrency limit {options['tag']!r}.")
