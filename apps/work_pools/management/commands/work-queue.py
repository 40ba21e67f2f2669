"""`orchestrator work-queue create|ls|update|pause|resume --pool P`: the queues of a work pool (priority 1 is
the highest; a run naming no queue, or an unknown one, is the pool's default queue's)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.core.management.base import CommandError, CommandParser

from apps.core.management.base import OneLineErrorParser, OrchestratorCommand
from orchestrator.client import get_client

_pool_command = import_module("apps.work_pools.management.commands.work-pool")
render_queues, limit_value, changes, UNCHANGED = (
    _pool_command.render_queues,
    _pool_command.limit_value,
    _pool_command.changes,
    _pool_command.UNCHANGED,
)


class Command(OrchestratorCommand):
    help = "Create, list, pause and resume the queues of a work pool."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, parser_class=OneLineErrorParser, metavar="{create,ls,update,pause,resume}"
        )
        create = actions.add_parser("create", help="add a queue to a pool")
        create.add_argument("name", metavar="NAME")
        create.add_argument("--pool", required=True, metavar="POOL")
        create.add_argument("--priority", type=int, default=1, metavar="N", help="1 (default) is the highest")
        create.add_argument("--concurrency-limit", type=int, metavar="N", help="most runs of the queue active at once")
        create.add_argument("--paused", action="store_true", help="create it paused")
        create.add_argument("--description", help="what the queue is for")
        actions.add_parser("ls", help="list a pool's queues").add_argument("--pool", required=True, metavar="POOL")
        update = actions.add_parser("update", help="change a queue's priority, concurrency limit or description")
        update.add_argument("name", metavar="NAME")
        update.add_argument("--pool", required=True, metavar="POOL")
        update.add_argument("--priority", type=int, default=UNCHANGED, metavar="N", help="1 is the highest")
        update.add_argument(
            "--concurrency-limit",
            type=limit_value,
            default=UNCHANGED,
            metavar="N",
            help="most runs active at once (none: no limit)",
        )
        update.add_argument("--description", default=UNCHANGED, help="what the queue is for")
        for verb, text in (("pause", "hand none of the queue's runs to workers"), ("resume", "hand them out again")):
            sub = actions.add_parser(verb, help=text)
            sub.add_argument("name", metavar="NAME")
            sub.add_argument("--pool", required=True, metavar="POOL")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        client = get_client()
        pool = options["pool"]
        if action == "create":
            body = {"name": options["name"], "priority": options["priority"], "paused": options["paused"]}
            for key in ("concurrency_limit", "description"):
                if options[key] is not None:
                    body[key] = options[key]
            queue = client.create_work_queue(pool, body)
            where = f"in pool {queue['work_pool_name']!r} (priority {queue['priority']})"
            self.stdout.write(f"Created work queue {queue['name']!r} {where}")
        elif action == "ls":
            render_queues(self, client.read_work_queues(pool))
        elif action == "update":
            body = changes(options, ("priority", "concurrency_limit", "description"))
            if not body:
                raise CommandError("nothing to change: give --priority, --concurrency-limit and/or --description")
            queue = client.update_work_queue(pool, options["name"], body)
            self.stdout.write(f"Updated work queue {queue['name']!r} of pool {queue['work_pool_name']!r}")
        else:
            queue = client.update_work_queue(pool, options["name"], {"paused": action == "pause"})
            word = "paused" if queue["paused"] else "resumed"
            self.stdout.write(f"Work queue {queue['name']!r} of pool {queue['work_pool_name']!r} {word}")
