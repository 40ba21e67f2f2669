"""The decorators themselves: arguments checked at decoration time, `.with_options()`, `.fn`, names.

Nothing here runs a flow, so no database is needed: these mistakes must surface where they are made.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator import Flow, Task, flow, task
from orchestrator.sdk.exceptions import MissingContextError
from orchestrator.task_runners import SequentialTaskRunner, ThreadPoolTaskRunner


def add(a: int, b: int) -> int:
    return a + b


def hook(owner, run, state) -> None:
    pass


@pytest.mark.parametrize(
    ("decorator", "options", "error", "words"),
    [
        (task, {"retry_delay_seconds": -1}, ValueError, "retry_delay_seconds must not be negative"),
        (task, {"retry_delay_seconds": [1, -2]}, ValueError, "retry_delay_seconds must not be negative"),
        (task, {"retry_delay_seconds": "soon"}, TypeError, "retry_delay_seconds"),
        (flow, {"retry_delay_seconds": -0.5}, ValueError, "retry_delay_seconds must not be negative"),
        (flow, {"retry_delay_seconds": [1, 2]}, TypeError, "must be a number"),
        (task, {"retries": -1}, ValueError, "retries must be a non-negative integer"),
        (flow, {"retries": 1.5}, ValueError, "retries must be a non-negative integer"),
        (task, {"retry_jitter_factor": -0.1}, ValueError, "retry_jitter_factor"),
        (task, {"timeout_seconds": "1m"}, TypeError, "timeout_seconds must be a number of seconds"),
        (flow, {"timeout_seconds": -3}, ValueError, "timeout_seconds must not be negative"),
        (task, {"on_completion": hook}, TypeError, "Expected iterable for 'on_completion'"),
        (task, {"on_failure": [hook, "not callable"]}, TypeError, "Expected callables in 'on_failure'"),
        (flow, {"on_completion": [1]}, TypeError, "Expected callables in 'on_completion'"),
        (flow, {"on_failure": hook}, TypeError, "Expected iterable for 'on_failure'"),
        (flow, {"on_cancellation": "hook"}, TypeError, "Expected callables in 'on_cancellation'"),
        (flow, {"on_crashed": [None]}, TypeError, "Expected callables in 'on_crashed'"),
        (task, {"cache_key_fn": "key"}, TypeError, "cache_key_fn must be callable"),
        (task, {"cache_expiration": 60}, TypeError, "cache_expiration must be a datetime.timedelta"),
        (task, {"tags": "etl"}, TypeError, "tags must be a list of strings"),
        (task, {"result_serializer": "yaml"}, ValueError, "result_serializer must be one of"),
        (flow, {"result_storage": 42}, TypeError, "result_storage must be a local path"),
        (flow, {"task_runner": "threads"}, TypeError, "task_runner must be a task runner"),
        (flow, {"name": "a/b"}, ValueError, "may not contain '/'"),
    ],
)
def test_bad_decorator_arguments_raise_at_decoration_time(decorator, options, error, words):
    """A Prefect user's typo must fail on import of the flow file, not hours later inside a scheduled run."""
    with pytest.raises(error, match=words):
        decorator(**options)(add)


def test_decorators_work_with_and_without_parentheses():
    """`@flow` and `@flow()` (and the same for tasks) both give the decorated object."""
    assert isinstance(flow(add), Flow)
    assert isinstance(flow()(add), Flow)
    assert isinstance(task(add), Task)
    assert isinstance(task()(add), Task)


def test_default_names_come_from_the_function():
    """Runs are grouped by flow name: the default is the function name with dashes, as in Prefect."""

    def load_rows():
        pass

    assert flow(load_rows).name == "load-rows"
    assert task(load_rows).name == "load_rows"
    assert flow(name="custom")(load_rows).name == "custom"


def test_fn_is_the_undecorated_function():
    """`.fn` lets users unit-test their code without any orchestration (no run is created)."""
    assert task(add).fn is add
    assert flow(add).fn is add
    assert task(add).fn(2, 3) == 5
    assert flow(add).fn(2, 3) == 5


def test_task_with_options_returns_a_changed_copy():
    """`.with_options()` must not change the original: both variants are used in one flow file."""
    original = task(name="fetch", retries=1, tags=["io"])(add)
    changed = original.with_options(name="fetch-hard", retries=4, retry_delay_seconds=[0.1, 0.2])
    assert (original.name, original.retries, original.retry_delay_seconds) == ("fetch", 1, 0)
    assert (changed.name, changed.retries, changed.retry_delay_seconds) == ("fetch-hard", 4, [0.1, 0.2])
    assert changed.tags == ["io"]
    assert changed.fn is add


def test_flow_with_options_returns_a_changed_copy():
    """Flow options can be overridden per call site, keeping the rest of the configuration."""
    original = flow(name="etl", version="1", retries=2, task_runner=SequentialTaskRunner())(add)
    changed = original.with_options(version="2", timeout_seconds=5, validate_parameters=False)
    assert (original.version, original.timeout_seconds, original.should_validate_parameters) == ("1", None, True)
    assert (changed.name, changed.version, changed.retries) == ("etl", "2", 2)
    assert changed.timeout_seconds == 5
    assert changed.should_validate_parameters is False
    assert isinstance(changed.task_runner, SequentialTaskRunner)


def test_with_options_checks_the_new_options_too():
    """A bad value given through `.with_options()` fails as it would in the decorator."""
    with pytest.raises(ValueError, match="retry_delay_seconds must not be negative"):
        task(add).with_options(retry_delay_seconds=-1)
    with pytest.raises(TypeError, match="unknown option"):
        flow(add).with_options(colour="blue")


def test_decorator_arguments_are_kept_as_given():
    """The options a run reads later are the ones written on the decorator (normalised, not reinterpreted)."""
    configured = task(
        retries=3,
        retry_delay_seconds=[1, 2, 4],
        retry_jitter_factor=0.5,
        cache_expiration=timedelta(minutes=2),
        tags=["a", "b"],
    )(add)
    assert configured.retries == 3
    assert configured.retry_delay_seconds == [1.0, 2.0, 4.0]
    assert configured.retry_jitter_factor == 0.5
    assert configured.cache_expiration == timedelta(minutes=2)
    assert configured.tags == ["a", "b"]


def test_a_task_runner_class_is_accepted_in_place_of_an_instance():
    """Prefect accepts `task_runner=ThreadPoolTaskRunner` without parentheses; so do we."""
    assert isinstance(flow(task_runner=ThreadPoolTaskRunner)(add).task_runner, ThreadPoolTaskRunner)


@pytest.mark.parametrize("call", ["call", "submit", "map"])
def test_tasks_called_outside_a_flow_raise_a_clear_error(call):
    """Outside a flow there is no run to record into: say so and point at `.fn` instead of failing oddly."""
    adder = task(add)
    with pytest.raises(MissingContextError, match=r"called outside a flow.*add\.fn"):
        if call == "call":
            adder(1, 2)
        elif call == "submit":
            adder.submit(1, 2)
        else:
            adder.map([1, 2], [3, 4])
