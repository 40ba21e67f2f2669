"""Futures, mapping, upstream dependencies, subflows and how a flow's final state follows its task runs."""

from __future__ import annotations

import threading
import time

import pytest

from apps.runs.models import FlowRun
from apps.runs.selectors import flow_run_graph
from orchestrator import flow, task, unmapped
from orchestrator.sdk.exceptions import UpstreamTaskError
from tests.sdk.helpers import flow_run_named, history, task_run_named, task_runs_of

pytestmark = pytest.mark.django_db(transaction=True)


@task
def double(x: int) -> int:
    return 2 * x


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def explode(x: int = 0) -> int:
    raise ValueError(f"cannot handle {x}")


def test_submit_returns_a_future_with_result_wait_and_state():
    """A future gives the result (with a timeout), lets the flow wait, and shows the run's state."""
    release = threading.Event()
    seen: dict = {}

    @task
    def gated() -> str:
        release.wait(5)
        return "opened"

    @flow(name="futures")
    def futures() -> None:
        future = gated.submit()
        with pytest.raises(TimeoutError, match="did not finish within 0.05 second"):
            future.result(timeout=0.05)
        seen["early"] = future.state.type
        release.set()
        assert future.wait() is None
        seen["final"] = future.state.name
        seen["value"] = future.result(timeout=5)

    futures()
    assert seen["early"] in ("PENDING", "RUNNING")
    assert (seen["final"], seen["value"]) == ("Completed", "opened")
    assert flow_run_named("futures").state_name == "Completed"


def test_wait_for_orders_tasks_without_passing_data():
    """wait_for=[future] starts a task only after the other finished, and records the dependency."""
    order: list[str] = []

    @task
    def first() -> None:
        time.sleep(0.05)
        order.append("first")

    @task
    def second() -> None:
        order.append("second")

    @flow(name="waiting")
    def waiting() -> None:
        before = first.submit()
        second.submit(wait_for=[before]).wait()

    waiting()
    assert order == ["first", "second"]
    run = flow_run_named("waiting")
    graph = flow_run_graph(run=run)
    first_id = str(task_run_named(run, "first-0").id)
    second_id = str(task_run_named(run, "second-0").id)
    assert {"from": first_id, "to": second_id, "argument": "__wait_for"} in graph["edges"]


def test_map_with_unmapped_runs_one_task_per_item():
    """map() fans out over iterables (zipped); unmapped() passes a value whole to every run."""

    @flow(name="mapping")
    def mapping() -> list[int]:
        futures = add.map([1, 2, 3], unmapped(10))
        return [future.result() for future in futures]

    assert mapping() == [11, 12, 13]
    run = flow_run_named("mapping")
    runs = task_runs_of(run)
    assert sorted(task_run.name for task_run in runs) == ["add-0", "add-1", "add-2"]
    assert all(task_run.state_name == "Completed" for task_run in runs)


def test_futures_and_results_passed_to_tasks_become_graph_edges():
    """Data passed between tasks (as futures or as plain results) is the dependency graph the UI draws."""

    @flow(name="graph")
    def graph_flow() -> int:
        doubled = double.submit(1)  # a future
        # A plain result of a task run (results are tracked by identity: small ints are shared objects).
        doubled_again = double(300)
        mapped = double.map([doubled, 4])  # futures as map items
        return add(doubled, doubled_again) + add(mapped[0], mapped[1])

    assert graph_flow() == (2 + 600) + (4 + 8)
    run = flow_run_named("graph")
    graph = flow_run_graph(run=run)
    ids = {node["name"]: node["id"] for node in graph["nodes"]}
    edges = {(edge["from"], edge["to"], edge["argument"]) for edge in graph["edges"]}
    assert edges == {
        (ids["double-0"], ids["add-0"], "a"),
        (ids["double-1"], ids["add-0"], "b"),
        (ids["double-0"], ids["double-2"], "x"),
        (ids["double-2"], ids["add-1"], "a"),
        (ids["double-3"], ids["add-1"], "b"),
    }
    add_0 = next(node for node in graph["nodes"] if node["name"] == "add-0")
    assert add_0["upstream"] == sorted([ids["double-0"], ids["double-1"]])


def test_mapping_over_a_task_result_records_it_as_upstream_of_every_mapped_run():
    """Fanning out over what a task returned (a future or its plain result) keeps the edge for each item."""

    @task
    def rows() -> list[int]:
        return [1, 2, 3]

    @flow(name="map-upstream")
    def map_upstream() -> list[int]:
        over_future = double.map(rows.submit())
        over_result = double.map(rows())
        return [future.result() for future in over_future + over_result]

    assert map_upstream() == [2, 4, 6, 2, 4, 6]
    graph = flow_run_graph(run=flow_run_named("map-upstream"))
    ids = {node["name"]: node["id"] for node in graph["nodes"]}
    edges = {(edge["from"], edge["to"], edge["argument"]) for edge in graph["edges"]}
    assert edges == {(ids["rows-0"], ids[f"double-{index}"], "x") for index in range(3)} | {
        (ids["rows-1"], ids[f"double-{index}"], "x") for index in range(3, 6)
    }


def test_subflows_are_linked_to_their_parent_through_a_task_run():
    """A flow called inside a flow is a child run, reachable from the parent's graph and its own record."""

    @flow(name="child")
    def child(x: int) -> int:
        return double(x)

    @flow(name="parent")
    def parent() -> int:
        return child(1) + child(2)

    assert parent() == 6
    parent_run = flow_run_named("parent")
    children = list(FlowRun.objects.filter(flow__name="child").order_by("created"))
    assert len(children) == 2
    graph = flow_run_graph(run=parent_run)
    assert sorted(row["id"] for row in graph["subflow_runs"]) == sorted(str(run.id) for run in children)
    for child_run in children:
        link = child_run.parent_task_run
        assert link.flow_run_id == parent_run.id
        assert (child_run.state_name, link.state_name) == ("Completed", "Completed")
        assert history(link) == ["Pending", "Running", "Completed"]
        assert task_runs_of(child_run)[0].name == "double-0"


def test_a_failed_subflow_fails_the_parent_and_its_link():
    """The parent's record of a subflow follows the subflow's end, so the parent's graph shows the failure."""

    @flow(name="failing-child")
    def failing_child() -> None:
        explode(1)

    @flow(name="parent-of-failure")
    def parent_of_failure():
        return failing_child(return_state=True)

    state = parent_of_failure(return_state=True)
    assert state.name == "Failed"
    child_run = flow_run_named("failing-child")
    assert child_run.state_name == "Failed"
    assert child_run.parent_task_run.state_name == "Failed"


def test_return_state_gives_the_state_and_result_raises_for_failures():
    """return_state=True hands back the State; State.result() raises the run's own exception if it failed."""
    captured: dict = {}

    @flow(name="states")
    def states() -> str:
        good = double(2, return_state=True)
        bad = explode(5, return_state=True)
        captured.update(good=good, bad=bad)
        with pytest.raises(ValueError, match="cannot handle 5"):
            bad.result()
        assert isinstance(bad.result(raise_on_failure=False), ValueError)
        return "handled"

    state = states(return_state=True)
    assert (captured["good"].name, captured["good"].result()) == ("Completed", 4)
    assert captured["bad"].name == "Failed"
    assert (state.name, state.result()) == ("Completed", "handled")


def test_a_flow_that_handles_a_failed_task_is_completed():
    """Looking at a failed future and deciding what to do is handling it: the flow is Completed."""

    @flow(name="handles-failure")
    def handles_failure() -> str:
        future = explode.submit(3)
        future.wait()
        return "fallback" if future.state.is_failed() else "unexpected"

    assert handles_failure() == "fallback"
    assert flow_run_named("handles-failure").state_name == "Completed"


def test_a_task_whose_upstream_failed_is_not_ready_and_does_not_run():
    """Downstream work of a failure must not run on missing data: it ends Pending, named NotReady."""
    ran: list[int] = []

    @task
    def downstream(value: int) -> None:
        ran.append(value)

    @flow(name="not-ready")
    def not_ready():
        upstream = explode.submit(1)
        return downstream.submit(upstream)

    state = not_ready(return_state=True)
    assert ran == []
    run = flow_run_named("not-ready")
    downstream_run = task_run_named(run, "downstream-0")
    assert (downstream_run.state_type, downstream_run.state_name) == ("PENDING", "NotReady")
    assert history(downstream_run) == ["NotReady"]
    assert str(task_run_named(run, "explode-0").id) in downstream_run.state_message
    assert state.name == "Failed"
    with pytest.raises(UpstreamTaskError):
        state.result()


@pytest.mark.parametrize(
    ("returned", "expected_name", "expected_message"),
    [
        ("good-future", "Completed", None),
        ("bad-future", "Failed", "Task run encountered an exception ValueError: cannot handle 0"),
        ("mixed-list", "Failed", "1/2 states failed"),
        ("good-states", "Completed", None),
    ],
)
def test_a_flow_returning_futures_or_states_takes_its_final_state_from_them(returned, expected_name, expected_message):
    """Returned futures and states decide the flow's state (and only they, when the flow returns them)."""

    @flow(name=f"returns-{returned}")
    def returns():
        explode.submit()  # not returned: ignored when the flow returns futures or states
        if returned == "good-future":
            return double.submit(1)
        if returned == "bad-future":
            return explode.submit(0)
        if returned == "mixed-list":
            return [double.submit(1), explode.submit(0)]
        return (double(1, return_state=True), double(2, return_state=True))

    state = returns(return_state=True)
    assert (state.name, state.message) == (expected_name, expected_message)
    if returned == "good-future":
        assert state.result() == 2
    if returned == "good-states":
        assert state.result() == (2, 4)


def test_a_task_raising_inside_map_fails_only_its_own_run():
    """One bad item in a fan-out fails its run; the others complete and the flow reports the count."""

    @task
    def parse(text: str) -> int:
        return int(text)

    @flow(name="map-raises")
    def map_raises():
        return parse.map(["1", "two", "3"])

    state = map_raises(return_state=True)
    run = flow_run_named("map-raises")
    names = {task_run.name: task_run.state_name for task_run in task_runs_of(run)}
    assert names == {"parse-0": "Completed", "parse-1": "Failed", "parse-2": "Completed"}
    assert (state.name, state.message) == ("Failed", "1/3 states failed")
    with pytest.raises(ValueError, match="invalid literal for int"):
        state.result()


def test_mapping_over_iterables_of_different_lengths_is_refused():
    """Zipping silently would drop items; map() says which arguments disagree."""

    @flow(name="bad-map")
    def bad_map() -> None:
        add.map([1, 2], [1, 2, 3])

    with pytest.raises(ValueError, match="different lengths"):
        bad_map()


def test_a_submitted_task_that_cannot_start_gives_a_failed_future_instead_of_leaving_the_flow_running():
    """A task whose run cannot even be created (here a bad run name template) must not strand its flow run
    in Running: the future holds a Failed state with the error, and a flow returning it ends Failed."""

    @task(task_run_name="page-{missing}")
    def misnamed(x: int) -> int:
        return x

    @flow(name="cannot-start")
    def cannot_start():
        return misnamed.submit(1)

    state = cannot_start(return_state=True)
    assert state.name == "Failed"
    assert "run name template 'page-{missing}' could not be formatted" in state.message
    with pytest.raises(ValueError, match="could not be formatted"):
        state.result()
    assert flow_run_named("cannot-start").state_name == "Failed"
