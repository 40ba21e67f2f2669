"""What running tests/sdk/flow_files/tutorial_flows.py must record, and readers that describe what it did record.

The same description is read from three places: the test database through the models (in-process run),
an SQLite file with the standard library (a script run with no server) and the REST API (a script run
against a server). Equal descriptions mean both modes give the same states, histories, edges and logs.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

FLOW_FILE = Path(__file__).resolve().parent / "flow_files" / "tutorial_flows.py"

# What the script prints: each flow's final state and result.
EXPECTED_SUMMARY = [
    {"flow": "tutorial-etl", "state": "Completed", "message": None, "result": 4},
    {"flow": "tutorial-fan-out", "state": "Completed", "message": None, "result": 14},
    {"flow": "tutorial-regions", "state": "Completed", "message": None, "result": ["emea: ok", "apac: ok"]},
    {"flow": "tutorial-async", "state": "Completed", "message": None, "result": 300},
    {"flow": "tutorial-cached", "state": "Completed", "message": None, "result": 110.0},
    {"flow": "tutorial-cached", "state": "Completed", "message": None, "result": 110.0},
    {"flow": "tutorial-quality-gate", "state": "Failed", "message": "2/2 states failed", "result": None},
]

# Log lines the flows write on purpose (the rest, such as "Beginning flow run 'random-name'", vary).
KNOWN_LOG_LINES = {"transformed 4 records from crm", "loaded 4 records"}

RAN = ("Pending", "Running", "Completed")


def _run(flow: str, state: str, task_runs: list[tuple], *, edges=(), parent=None, logs=(), history=None) -> dict:
    return {
        "flow": flow,
        "state": state,
        "history": list(history or ("Pending", "Running", state)),
        "parent": parent,
        "task_runs": sorted(task_runs),
        "edges": sorted(edges),
        "logs": sorted(logs),
    }


# Every flow run the script makes, oldest first.
EXPECTED_RUNS = [
    _run(
        "tutorial-etl",
        "Completed",
        [("extract-0", "Completed", ("Pending", "Running", "AwaitingRetry", "Retrying", "Completed"))]
        + [(f"transform-{index}", "Completed", RAN) for index in range(4)]
        + [("load-0", "Completed", RAN)],
        edges=[("extract-0", f"transform-{index}", "record") for index in range(4)]
        + [(f"transform-{index}", "load-0", "records") for index in range(4)],
        logs=["loaded 4 records", "transformed 4 records from crm"],
    ),
    _run("tutorial-fan-out", "Completed", [(f"square-{index}", "Completed", RAN) for index in range(4)]),
    _run("tutorial-regions", "Completed", [("tutorial-report", "Completed", RAN)] * 2),
    _run("tutorial-report", "Completed", [("summarize-0", "Completed", RAN)], parent="tutorial-regions"),
    _run("tutorial-report", "Completed", [("summarize-0", "Completed", RAN)], parent="tutorial-regions"),
    _run("tutorial-async", "Completed", [(f"fetch_page-{index}", "Completed", RAN) for index in range(3)]),
    _run("tutorial-cached", "Completed", [("lookup_rate-0", "Completed", RAN)]),
    _run("tutorial-cached", "Completed", [("lookup_rate-0", "Cached", ("Pending", "Cached"))]),
    _run(
        "tutorial-quality-gate",
        "Failed",
        [("validate-0", "Failed", ("Pending", "Running", "Failed")), ("publish-0", "NotReady", ("NotReady",))],
        edges=[("validate-0", "publish-0", "rows")],
    ),
]


def run_script(env: dict[str, str], *, server: Any = None, timeout: float = 60) -> list[dict]:
    """Run the flow file as a script (`python tutorial_flows.py`) and return the summary it prints.

    With `server` (a RunningServer) a failure also shows what the server printed."""
    result = subprocess.run([sys.executable, str(FLOW_FILE)], env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        server_output = f"\n--- server output ---\n{server.output()[-4000:]}" if server is not None else ""
        raise AssertionError(f"the flow file failed:\n{result.stderr[-4000:]}{server_output}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _edges(task_runs: list[dict]) -> list[tuple[str, str, str]]:
    """(upstream name, downstream name, argument) for every task_run input of these task runs."""
    names = {uuid.UUID(str(task_run["id"])): task_run["name"] for task_run in task_runs}
    found = []
    for task_run in task_runs:
        for argument, inputs in (task_run["task_inputs"] or {}).items():
            for item in inputs:
                if item.get("input_type") == "task_run" and uuid.UUID(str(item["id"])) in names:
                    found.append((names[uuid.UUID(str(item["id"]))], task_run["name"], argument))
    return found


def records_from_models() -> list[dict]:
    """The description, from the database this process uses (an in-process run)."""
    from apps.logs.models import Log
    from apps.runs.models import FlowRun
    from apps.runs.selectors import flow_run_graph, flow_run_states, task_run_states

    records = []
    for run in FlowRun.objects.select_related("flow", "parent_task_run__flow_run__flow").order_by("created"):
        task_runs = list(run.task_runs.order_by("created"))
        graph = flow_run_graph(run=run)
        names = {node["id"]: node["name"] for node in graph["nodes"]}
        logs = Log.objects.filter(flow_run=run, message__in=KNOWN_LOG_LINES).values_list("message", flat=True)
        records.append(
            _run(
                run.flow.name,
                run.state_name,
                [
                    (task_run.name, task_run.state_name, tuple(row.name for row in task_run_states(run=task_run)))
                    for task_run in task_runs
                ],
                edges=[(names[edge["from"]], names[edge["to"]], edge["argument"]) for edge in graph["edges"]],
                parent=run.parent_task_run.flow_run.flow.name if run.parent_task_run else None,
                logs=list(logs),
                history=[row.name for row in flow_run_states(run=run)],
            )
        )
    return records


def records_from_sqlite(database: Path) -> list[dict]:
    """The description, read with the standard library from the SQLite file a script run wrote."""
    connection = sqlite3.connect(database)
    connection.row_factory = sqlite3.Row
    try:
        flow_runs = connection.execute(
            "SELECT run.id, run.state_name, run.parent_task_run_id, flow.name AS flow_name "
            "FROM runs_flowrun run JOIN flows_flow flow ON flow.id = run.flow_id ORDER BY run.created"
        ).fetchall()
        flow_of_run = {row["id"]: row["flow_name"] for row in flow_runs}
        records = []
        for run in flow_runs:
            task_runs = [
                {**dict(row), "task_inputs": json.loads(row["task_inputs"])}
                for row in connection.execute(
                    "SELECT id, name, state_name, task_inputs, flow_run_id FROM runs_taskrun "
                    "WHERE flow_run_id = ? ORDER BY created",
                    (run["id"],),
                )
            ]
            parent = None
            if run["parent_task_run_id"]:
                parent_flow_run = connection.execute(
                    "SELECT flow_run_id FROM runs_taskrun WHERE id = ?", (run["parent_task_run_id"],)
                ).fetchone()[0]
                parent = flow_of_run[parent_flow_run]
            records.append(
                _run(
                    run["flow_name"],
                    run["state_name"],
                    [
                        (task_run["name"], task_run["state_name"], tuple(_sqlite_history(connection, task_run)))
                        for task_run in task_runs
                    ],
                    edges=_edges(task_runs),
                    parent=parent,
                    logs=[
                        row[0]
                        for row in connection.execute(
                            f"SELECT message FROM logs_log WHERE flow_run_id = ? AND message IN "
                            f"({', '.join('?' * len(KNOWN_LOG_LINES))})",
                            (run["id"], *sorted(KNOWN_LOG_LINES)),
                        )
                    ],
                    history=[
                        row[0]
                        for row in connection.execute(
                            "SELECT name FROM runs_flowrunstate WHERE flow_run_id = ? ORDER BY timestamp, created",
                            (run["id"],),
                        )
                    ],
                )
            )
        return records
    finally:
        connection.close()


def _sqlite_history(connection: sqlite3.Connection, task_run: dict) -> list[str]:
    rows = connection.execute(
        "SELECT name FROM runs_taskrunstate WHERE task_run_id = ? ORDER BY timestamp, created", (task_run["id"],)
    )
    return [row[0] for row in rows]


def records_from_api(api_url: str, api_key: str) -> list[dict]:
    """The description, read through the REST API of the server the script ran against."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=api_url.rstrip("/") + "/", timeout=30, headers=headers) as client:

        def get(path: str, **params: Any) -> Any:
            response = client.get(path, params=params)
            assert response.status_code == 200, (path, response.status_code, response.text)
            return response.json()

        flow_runs = get("flow_runs/", ordering="created", limit=1000)["results"]
        flow_of_run = {run["id"]: run["flow_name"] for run in flow_runs}
        records = []
        for run in flow_runs:
            task_runs = get("task_runs/", flow_run=run["id"], ordering="created", limit=1000)["results"]
            graph = get(f"flow_runs/{run['id']}/graph/")
            names = {node["id"]: node["name"] for node in graph["nodes"]}
            parent = None
            if run["parent_task_run"]:
                parent = flow_of_run[get(f"task_runs/{run['parent_task_run']}/")["flow_run"]]
            logs = [
                line["message"]
                for line in get("logs/", flow_run=run["id"], limit=1000)["results"]
                if line["message"] in KNOWN_LOG_LINES
            ]
            records.append(
                _run(
                    run["flow_name"],
                    run["state_name"],
                    [
                        (
                            task_run["name"],
                            task_run["state_name"],
                            tuple(state["name"] for state in get(f"task_runs/{task_run['id']}/states/")),
                        )
                        for task_run in task_runs
                    ],
                    edges=[(names[edge["from"]], names[edge["to"]], edge["argument"]) for edge in graph["edges"]],
                    parent=parent,
                    logs=logs,
                    history=[state["name"] for state in get(f"flow_runs/{run['id']}/states/")],
                )
            )
        return records
