"""Prefect 3 fidelity: log_prints=True patches print only while that flow or task runs."""

from __future__ import annotations

import builtins

import pytest

from orchestrator import flow, task
from tests.sdk.helpers import flow_run_named, log_messages, task_run_named

pytestmark = pytest.mark.django_db(transaction=True)


def test_log_prints_restores_print_after_the_task_or_subflow_returns(monkeypatch: pytest.MonkeyPatch):
    """After a printing task or subflow returns, print is again the one that was there before (here the
    user's own), and prints outside those runs reach it, not the run log."""
    outside: list[str] = []

    def users_print(*args, **kwargs) -> None:
        outside.append(" ".join(str(arg) for arg in args))

    monkeypatch.setattr(builtins, "print", users_print)
    seen: dict[str, bool] = {}

    @task(log_prints=True)
    def chatty_task() -> None:
        print("from the task")

    @flow(name="chatty-subflow", log_prints=True)
    def chatty_subflow() -> None:
        print("from the subflow")

    @flow(name="plain-parent")
    def plain_parent() -> None:
        print("from the parent")
        chatty_task()
        seen["after task"] = builtins.print is users_print
        chatty_task.submit().wait()
        seen["after submitted task"] = builtins.print is users_print
        chatty_subflow()
        seen["after subflow"] = builtins.print is users_print
        print("parent again")

    plain_parent()
    assert seen == {"after task": True, "after submitted task": True, "after subflow": True}
    assert builtins.print is users_print
    assert outside == ["from the parent", "parent again"]
    parent = flow_run_named("plain-parent")
    assert "from the task" in log_messages(task_run=task_run_named(parent, "chatty_task-0"))
    assert "from the task" in log_messages(task_run=task_run_named(parent, "chatty_task-1"))
    assert "from the subflow" in log_messages(flow_run=flow_run_named("chatty-subflow"))
    assert not {"from the parent", "parent again"} & set(log_messages(flow_run=parent))


def test_log_prints_restores_print_after_the_flow_returns():
    """A flow with log_prints=True leaves print as it found it, also when the flow fails."""
    before = builtins.print

    @flow(name="printing-flow", log_prints=True)
    def printing_flow(fail: bool) -> None:
        print("inside")
        if fail:
            raise RuntimeError("no")

    printing_flow(False)
    assert builtins.print is before
    printing_flow(True, return_state=True)
    assert builtins.print is before
