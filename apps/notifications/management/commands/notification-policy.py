"""`orchestrator notification-policy create|ls|inspect|delete|test`: which flow run state changes notify, and
through which channel block (docs/notifications.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from apps.core.management.base import OneLineErrorParser, OrchestratorCommand
from orchestrator.client import get_client


def _listed(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class Command(OrchestratorCommand):
    help = "Create, list, inspect, delete and test notification policies."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, parser_class=OneLineErrorParser, metavar="{create,ls,inspect,delete,test}"
        )
        create = actions.add_parser("create", help="notify through a block when flow runs enter some states")
        create.add_argument("name", metavar="NAME")
        create.add_argument(
            "--states", required=True, type=_listed, help="state types or names, comma-separated: FAILED,CRASHED,LATE"
        )
        create.add_argument(
            "--block", required=True, help="the channel block: webhook/NAME, slack-webhook/NAME, smtp/NAME"
        )
        create.add_argument("--tag", action="append", default=[], dest="tags", help="only runs with this tag (repeat)")
        create.add_argument("--flow", action="append", default=[], dest="flow_names", help="only runs of this flow")
        create.add_argument(
            "--deployment", action="append", default=[], dest="deployments", help="a deployment id or name"
        )
        create.add_argument(
            "--pool", action="append", default=[], dest="work_pools", help="only runs in this work pool"
        )
        create.add_argument(
            "--email-to", action="append", default=[], dest="email_to", help="a recipient (smtp blocks)"
        )
        create.add_argument("--template", help="the message, with placeholders such as {flow_run_name} {state_name}")
        actions.add_parser("ls", help="list policies")
        actions.add_parser("inspect", help="a policy and its latest deliveries").add_argument("name", metavar="NAME")
        actions.add_parser("delete", help="delete a policy").add_argument("name", metavar="NAME")
        actions.add_parser("test", help="send a test notification now").add_argument("name", metavar="NAME")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        client = get_client()
        name = options["name"] if action != "ls" else ""
        if action == "create":
            body: dict[str, Any] = {"name": name, "state_types": options["states"], "block": options["block"]}
            for field in ("tags", "flow_names", "deployments", "work_pools", "email_to"):
                if options[field]:
                    body[field] = options[field]
            if options["template"] is not None:
                body["message_template"] = options["template"]
            created = client.create_notification_policy(body)
            self.stdout.write(
                f"Created notification policy {created['name']!r}: {', '.join(created['state_types'])} "
                f"through {created['block']}."
            )
        elif action == "ls":
            self.print_table(
                ("name", "active", "states", "block", "filters"),
                (
                    (
                        row["name"],
                        "yes" if row["is_active"] else "no",
                        ",".join(row["state_types"]),
                        row["block"],
                        _filters(row),
                    )
                    for row in client.read_notification_policies()
                ),
            )
        elif action == "inspect":
            policy = client.read_notification_policy(name)
            for field in (
                "name",
                "is_active",
                "state_types",
                "block",
                "tags",
                "flow_names",
                "deployments",
                "work_pools",
                "email_to",
            ):
                value = policy[field]
                shown = ", ".join(value) if isinstance(value, list) else value
                self.stdout.write(f"{field + ':':<14}{shown if shown not in ('', None) else '-'}")
            self.stdout.write(f"{'template:':<14}{policy['message_template']!r}")
            deliveries = client.read_notification_deliveries(policy=policy["name"], limit=10)
            self.stdout.write("latest deliveries:" if deliveries else "latest deliveries: none")
            for delivery in deliveries:
                error = f"  {delivery['last_error']}" if delivery["last_error"] else ""
                self.stdout.write(
                    f"  {delivery['created']}  {delivery['status']:<7} attempts {delivery['attempts']}  "
                    f"run {delivery['flow_run_id']}{error}"
                )
        elif action == "delete":
            client.delete_notification_policy(name)
            self.stdout.write(f"Deleted notification policy {name!r}.")
        else:
            result = client.test_notification_policy(name)
            self.stdout.write(f"Sent a test notification of {name!r}: {result['result']}.")


def _filters(row: dict[str, Any]) -> str:
    parts = [
        f"{label}={','.join(row[field])}"
        for label, field in (
            ("tags", "tags"),
            ("flows", "flow_names"),
            ("deployments", "deployments"),
            ("pools", "work_pools"),
        )
        if row[field]
    ]
    return " ".join(parts) or "-"
