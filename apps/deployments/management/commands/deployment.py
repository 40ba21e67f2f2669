"""`orchestrator deployment ls|inspect|run|pause|resume`: list deployments, show one with its schedules and
upcoming runs, start an ad hoc run (and watch it to its end), stop and restart scheduling."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import CommandError, CommandParser

from apps.core.management.base import OneLineErrorParser, OrchestratorCommand
from apps.deployments.cli import parse_params
from apps.deployments.schedules import describe
from orchestrator.client import OrchestratorClient, get_client
from orchestrator.states import TERMINAL_TYPES

WATCH_POLL_SECONDS = 0.5
# How often --watch asks why a run that has not started is waiting.
WAITING_SECONDS = 3.0
TERMINAL_NAMES = {state_type.value for state_type in TERMINAL_TYPES}


def state_label(run: dict[str, Any]) -> str:
    name, state_type = run.get("state_name"), run.get("state_type")
    return name if name and state_type and name.upper() == state_type else f"{name} ({state_type})"


class Command(OrchestratorCommand):
    help = "List, inspect, run, pause and resume deployments."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, parser_class=OneLineErrorParser, metavar="{ls,inspect,run,pause,resume}"
        )
        actions.add_parser("ls", help="list deployments")
        for verb, text in (
            ("inspect", "show a deployment, its schedules and upcoming runs"),
            ("pause", "stop scheduling (its future scheduled runs are removed)"),
            ("resume", "schedule again"),
        ):
            actions.add_parser(verb, help=text).add_argument("deployment", metavar="FLOW/DEPLOYMENT")
        run = actions.add_parser("run", help="start an ad hoc run of a deployment")
        run.add_argument("deployment", metavar="FLOW/DEPLOYMENT")
        run.add_argument("--param", action="append", default=[], metavar="K=V", help="a parameter (JSON or text)")
        run.add_argument("--watch", action="store_true", help="print each state change until the run is final")
        run.add_argument("--timeout", type=float, metavar="SECONDS", help="with --watch: give up after SECONDS")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        client = get_client()
        if action == "ls":
            self.render_list(client.read_deployments())
        elif action == "inspect":
            deployment = client.read_deployment(options["deployment"])
            self.render_detail(deployment, client.read_deployment_upcoming_runs(deployment["id"], limit=5))
        elif action in ("pause", "resume"):
            deployment = client.read_deployment(options["deployment"])
            deployment = client.set_deployment_paused(deployment["id"], action == "pause")
            word = "paused" if deployment["paused"] else "resumed"
            self.stdout.write(f"Deployment '{deployment['flow_name']}/{deployment['name']}' {word}")
        else:
            parameters = parse_params(options["param"])
            deployment = client.read_deployment(options["deployment"])
            run = client.create_flow_run_from_deployment_json(deployment["id"], parameters=parameters)
            self.stdout.write(f"Created flow run {run['name']!r} ({run['id']}): {state_label(run)}")
            if options["watch"]:
                self.watch(client, run, timeout=options["timeout"])

    def watch(self, client: OrchestratorClient, run: dict[str, Any], *, timeout: float | None) -> None:
        """Print each state the run enters (from its history, so none is missed however fast the run goes)
        until it is final; a run that does not end Completed exits 1."""
        deadline = None if timeout is None else time.monotonic() + timeout
        printed = {run["state"]["id"]} if run.get("state") else set()
        said_waiting: list[str] = []
        asked_at = time.monotonic()  # a run picked up at once needs no explanation
        while True:
            for state in client.read_flow_run_states(run["id"]):
                if state["id"] in printed:
                    continue
                printed.add(state["id"])
                message = f": {state['message']}" if state.get("message") else ""
                label = (
                    state["name"] if state["name"].upper() == state["type"] else f"{state['name']} ({state['type']})"
                )
                self.stdout.write(f"{state['timestamp'][:23]}  {label}{message}")
                self.stdout.flush()
            run = client.read_flow_run_json(run["id"])
            if run.get("state_type") in TERMINAL_NAMES and (run.get("state") or {}).get("id") in printed:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(f"flow run {run['id']} is still {state_label(run)} after {timeout:g} s")
            if run.get("state_type") in ("SCHEDULED", "PENDING") and time.monotonic() - asked_at >= WAITING_SECONDS:
                # Say what the run waits for (no worker, a paused pool, ...), again whenever that changes.
                asked_at = time.monotonic()
                reasons = [reason["message"] for reason in client.read_flow_run_waiting(run["id"])["reasons"]]
                if reasons and reasons != said_waiting:
                    self.stdout.write(f"waiting: {'; '.join(reasons)}")
                    self.stdout.flush()
                said_waiting = reasons
            time.sleep(WATCH_POLL_SECONDS)
        if run["state_type"] != "COMPLETED":
            raise CommandError(f"flow run {run['name']!r} ended {state_label(run)}")
        self.stdout.write(f"Flow run {run['name']!r} finished: {state_label(run)}")

    def render_list(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            self.stdout.write("no deployments")
            return
        self.print_table(
            ("id", "deployment", "work pool", "schedules", "paused"),
            (
                (
                    row["id"],
                    f"{row['flow_name']}/{row['name']}",
                    row.get("work_pool_name") or "-",
                    "; ".join(describe(item["schedule"]) for item in row["schedules"] if item["active"]) or "-",
                    "yes" if row["paused"] else "no",
                )
                for row in rows
            ),
        )

    def render_detail(self, deployment: dict[str, Any], upcoming: list[dict[str, Any]]) -> None:
        fields = [
            ("id", deployment["id"]),
            ("deployment", f"{deployment['flow_name']}/{deployment['name']}"),
            ("entrypoint", deployment.get("entrypoint") or "-"),
            ("path", deployment.get("path") or "-"),
            ("storage", deployment.get("storage_block") or "-"),
            ("code prefix", deployment.get("storage_path") or "-"),
            ("work pool", deployment.get("work_pool_name") or "-"),
            ("work queue", deployment.get("work_queue_name") or "-"),
            ("paused", "yes" if deployment["paused"] else "no"),
            ("parameters", json.dumps(deployment.get("parameters") or {}, sort_keys=True)),
            ("tags", ", ".join(deployment.get("tags") or []) or "-"),
            ("version", deployment.get("version") or "-"),
            ("concurrency limit", deployment.get("concurrency_limit") or "-"),
        ]
        self.print_table(("field", "value"), fields, title=f"deployment {deployment['name']}")
        self.stdout.write("")
        self.print_table(
            ("schedule", "active"),
            ((describe(item["schedule"]), "yes" if item["active"] else "no") for item in deployment["schedules"]),
            title="schedules",
        )
        self.stdout.write("")
        self.print_table(
            ("expected start", "name", "state"),
            ((run["expected_start_time"], run["name"], state_label(run)) for run in upcoming),
            title="upcoming runs",
        )
