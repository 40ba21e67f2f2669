"""`orchestrator work-pool create|ls|inspect|pause|resume|delete`: the pools whose workers run deployments."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from apps.core.management.base import OneLineErrorParser, OrchestratorCommand
from apps.work_pools.cli import limit_text, yes_no
from apps.work_pools.models import WorkPoolType
from orchestrator.client import OrchestratorClient, get_client


class Command(OrchestratorCommand):
    help = "Create, list, inspect, pause, resume and delete work pools."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action",
            required=True,
            parser_class=OneLineErrorParser,
            metavar="{create,ls,inspect,pause,resume,delete}",
        )
        create = actions.add_parser("create", help="create a pool (with its default queue)")
        create.add_argument("name", metavar="NAME")
        create.add_argument("--type", choices=WorkPoolType.values, default=WorkPoolType.PROCESS, help="(process)")
        create.add_argument("--concurrency-limit", type=int, metavar="N", help="most runs of the pool active at once")
        create.add_argument("--paused", action="store_true", help="create it paused (workers get no runs)")
        create.add_argument("--description", help="what the pool is for")
        actions.add_parser("ls", help="list pools with their queues and workers online")
        for verb, text in (
            ("inspect", "show a pool, its queues and its workers"),
            ("pause", "stop handing the pool's runs to workers"),
            ("resume", "hand the pool's runs to workers again"),
            ("delete", "delete a pool with its queues (its runs are kept)"),
        ):
            actions.add_parser(verb, help=text).add_argument("name", metavar="NAME")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        client = get_client()
        if action == "create":
            body = {"name": options["name"], "type": options["type"], "paused": options["paused"]}
            for key in ("concurrency_limit", "description"):
                if options[key] is not None:
                    body[key] = options[key]
            pool = client.create_work_pool(body)
            self.stdout.write(f"Created work pool {pool['name']!r} (type {pool['type']}) with its default queue")
            self.stdout.write(f"Start a worker: {pool['worker_command']}")
        elif action == "ls":
            self.render_list(pools_with_summaries(client))
        elif action == "inspect":
            name = options["name"]
            self.render_detail(client.read_work_pool(name), client.read_work_queues(name), client.read_workers(name))
        elif action in ("pause", "resume"):
            pool = client.update_work_pool(options["name"], {"paused": action == "pause"})
            self.stdout.write(f"Work pool {pool['name']!r} {'paused' if pool['paused'] else 'resumed'}")
        else:
            client.delete_work_pool(options["name"])
            self.stdout.write(f"Deleted work pool {options['name']!r}")

    def render_list(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            self.stdout.write("no work pools (create one: orchestrator work-pool create NAME --type process)")
            return
        self.print_table(
            ("name", "type", "concurrency limit", "paused", "queues", "workers online"),
            (
                (
                    row["name"],
                    row["type"],
                    limit_text(row["concurrency_limit"]),
                    yes_no(row["paused"]),
                    row["queue_count"],
                    row["workers_online"],
                )
                for row in rows
            ),
        )

    def render_detail(self, pool: dict[str, Any], queues: list[dict[str, Any]], workers: list[dict[str, Any]]) -> None:
        fields = [
            ("id", pool["id"]),
            ("name", pool["name"]),
            ("type", pool["type"]),
            ("description", pool.get("description") or "-"),
            ("concurrency limit", limit_text(pool["concurrency_limit"])),
            ("paused", yes_no(pool["paused"])),
            ("start a worker", pool["worker_command"]),
        ]
        self.print_table(("field", "value"), fields, title=f"work pool {pool['name']}")
        self.stdout.write("")
        render_queues(self, queues)
        self.stdout.write("")
        self.print_table(
            ("worker", "last heartbeat", "status"),
            ((worker["name"], worker["last_heartbeat_at"], worker["status"]) for worker in workers),
            title="workers",
        )


def render_queues(command: OrchestratorCommand, queues: list[dict[str, Any]]) -> None:
    command.print_table(
        ("queue", "priority", "concurrency limit", "paused"),
        (
            (queue["name"], queue["priority"], limit_text(queue["concurrency_limit"]), yes_no(queue["paused"]))
            for queue in queues
        ),
        title="queues",
    )


def pools_with_summaries(client: OrchestratorClient) -> list[dict[str, Any]]:
    """Every pool, with `queue_count` and `workers_online` added."""
    rows = client.read_work_pools()
    for row in rows:
        row["queue_count"] = len(client.read_work_queues(row["name"]))
        row["workers_online"] = sum(1 for worker in client.read_workers(row["name"]) if worker["status"] == "online")
    return rows
