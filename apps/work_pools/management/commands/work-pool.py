"""`orchestrator work-pool create|ls|inspect|update|pause|resume|delete`: the pools whose workers run deployments."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandError, CommandParser

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
            metavar="{create,ls,inspect,update,pause,resume,delete}",
        )
        create = actions.add_parser("create", help="create a pool (with its default queue)")
        create.add_argument("name", metavar="NAME")
        create.add_argument("--type", choices=WorkPoolType.values, default=WorkPoolType.PROCESS, help="(process)")
        create.add_argument("--concurrency-limit", type=int, metavar="N", help="most runs of the pool active at once")
        create.add_argument("--paused", action="store_true", help="create it paused (workers get no runs)")
        create.add_argument("--description", help="what the pool is for")
        actions.add_parser("ls", help="list pools with their queues and workers online")
        update = actions.add_parser("update", help="change a pool's concurrency limit or description")
        update.add_argument("name", metavar="NAME")
        update.add_argument(
            "--concurrency-limit",
            type=limit_value,
            default=UNCHANGED,
            metavar="N",
            help="most runs active at once (none: no limit)",
        )
        update.add_argument("--description", default=UNCHANGED, help="what the pool is for")
        for verb, text in (
            ("inspect", "show a pool, its queues and its workers"),
            ("pause", "stop handing the pool's runs to workers"),
            ("resume", "hand the pool's runs to workers again"),
        ):
            actions.add_parser(verb, help=text).add_argument("name", metavar="NAME")
        delete = actions.add_parser("delete", help="delete a pool with its queues (its runs are kept)")
        delete.add_argument("name", metavar="NAME")
        delete.add_argument(
            "--force", action="store_true", help="pause the active deployments that use it first (else refused)"
        )

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
        elif action == "update":
            body = changes(options, ("concurrency_limit", "description"))
            if not body:
                raise CommandError("nothing to change: give --concurrency-limit and/or --description")
            pool = client.update_work_pool(options["name"], body)
            limit = limit_text(pool["concurrency_limit"])
            self.stdout.write(f"Updated work pool {pool['name']!r} (concurrency limit {limit})")
        elif action in ("pause", "resume"):
            pool = client.update_work_pool(options["name"], {"paused": action == "pause"})
            self.stdout.write(f"Work pool {pool['name']!r} {'paused' if pool['paused'] else 'resumed'}")
        else:
            name = options["name"]
            if options["force"]:
                for deployment in client.read_deployments(work_pool_name=name):
                    if not deployment["paused"]:
                        client.set_deployment_paused(deployment["id"], True)
                        self.stdout.write(f"Paused deployment {deployment['flow_name']}/{deployment['name']}")
            client.delete_work_pool(name)
            self.stdout.write(f"Deleted work pool {name!r}")

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


def limit_value(text: str) -> int | None:
    """A concurrency limit on the command line: a whole number, or `none` to remove the limit."""
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number or none") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


# The default of `update`'s options: an option left out changes nothing (`--concurrency-limit none` clears it).
UNCHANGED = object()


def changes(options: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The fields an `update` was given."""
    return {key: options[key] for key in keys if options.get(key, UNCHANGED) is not UNCHANGED}


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
