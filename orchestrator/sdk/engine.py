"""The client-side run engine: drives one flow run or task run through the server's orchestration engine.

Each run is a small state machine (`FlowRunEngine`, `TaskRunEngine`): set up the run, propose Running
(obeying WAIT and ABORT), call the user's function, propose the final state, and follow AwaitingRetry
answers with a new attempt. The sync and async drivers differ only in how they call the function and sleep.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from orchestrator.client import RunInfo, get_client, install_excepthook
from orchestrator.sdk import results
from orchestrator.sdk.concurrency import TAG_LIMIT_WAIT, renewer_for, wait_for_tag_slots
from orchestrator.sdk.context import (
    FlowRunContext,
    TaskRunContext,
    current_tags,
    flow_run_context,
    task_run_context,
)
from orchestrator.sdk.exceptions import (
    Abort,
    MissingContextError,
    ParameterValidationError,
    ResultPersistenceError,
    RunTimeout,
    UpstreamTaskError,
)
from orchestrator.sdk.futures import MappedItem, TaskRunFuture
from orchestrator.sdk.logging import flow_run_logger, prints_logged, shipper_for, task_run_logger
from orchestrator.sdk.parameters import bind_arguments, call_arguments, jsonable, validate_parameters
from orchestrator.sdk.tasks import default_cache_key, inputs_hash
from orchestrator.sdk.timeouts import await_with_timeout, call_with_timeout
from orchestrator.states import (
    Completed,
    Crashed,
    Failed,
    NotReady,
    Pending,
    Running,
    State,
    StateType,
    TimedOut,
)

# Interruptions from outside user code: the run is Crashed (never retried) and the exception goes on.
CRASH_EXCEPTIONS = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)


def _seconds_until(moment: datetime | None) -> float:
    if moment is None:
        return 0.0
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _describe(exception: BaseException) -> str:
    return f"{type(exception).__name__}: {exception}"


def _render_name(template: Any, parameters: dict[str, Any]) -> str | None:
    if template is None:
        return None
    if callable(template):
        return str(template())
    try:
        return str(template).format(**parameters)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"run name template {template!r} could not be formatted: {exc}") from exc


def _call_hooks(hooks: list, owner: Any, run: RunInfo, state: State, logger: Any) -> None:
    """Call each hook as hook(owner, run, state); a hook that raises is logged and changes nothing."""
    for hook in hooks:
        name = getattr(hook, "__name__", repr(hook))
        try:
            logger.info(f"Running hook {name!r} in response to entering state {state.name!r}")
            outcome = hook(owner, run, state)
            if inspect.isawaitable(outcome):
                _run_to_completion(outcome)
        except Exception as exc:
            logger.error(f"An error was encountered while running hook {name!r}: {_describe(exc)}")


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_to_completion(awaitable: Any) -> Any:
    """Await from sync code (an async task or hook), also in a thread whose event loop is busy running the flow:
    then in a helper thread with this thread's context, as asyncio.run() cannot nest."""

    async def wait() -> Any:
        return await awaitable

    if not _in_event_loop():
        return asyncio.run(wait())
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="orchestrator-async") as pool:
        return pool.submit(context.run, asyncio.run, wait()).result()


# --------------------------------------------------------------------------------------------------------------
# Inputs


_TRACKED_SKIP = (type(None), bool)


def track_result(context: FlowRunContext, value: Any, task_run_id: str) -> None:
    """Remember which task run produced `value`, so passing it to another task records the edge."""
    if isinstance(value, _TRACKED_SKIP) or (isinstance(value, int) and -5 <= value <= 256):
        return
    with context._lock:
        context.result_ids[id(value)] = (value, task_run_id)


def producer_of(value: Any) -> str | None:
    """The id of the task run (of the current flow run) whose result `value` is, if any."""
    context = flow_run_context.get()
    tracked = context.result_ids.get(id(value)) if context is not None else None
    return tracked[1] if tracked is not None and tracked[0] is value else None


def resolve_inputs(
    context: FlowRunContext, parameters: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, list[dict]], list[tuple[str | None, State]]]:
    """Replace futures and states in the arguments by their results; collect upstream edges and states."""
    edges: dict[str, list[dict]] = {}
    upstream: list[tuple[str | None, State]] = []

    def visit(value: Any, argument: str, depth: int) -> Any:
        if isinstance(value, MappedItem):
            edges.setdefault(argument, []).append({"input_type": "task_run", "id": value.task_run_id})
            return visit(value.value, argument, depth)
        if isinstance(value, TaskRunFuture):
            state = value.final_state()
            if value.task_run_id:
                edges.setdefault(argument, []).append({"input_type": "task_run", "id": value.task_run_id})
            upstream.append((value.task_run_id or value.name, state))
            return getattr(state, "_value", None) if state.type == StateType.COMPLETED else None
        if isinstance(value, State):
            task_run_id = getattr(value, "_task_run_id", None)
            if task_run_id:
                edges.setdefault(argument, []).append({"input_type": "task_run", "id": task_run_id})
            upstream.append((task_run_id or value.name, value))
            return value.result(raise_on_failure=False) if value.type == StateType.COMPLETED else None
        tracked = context.result_ids.get(id(value))
        if tracked is not None and tracked[0] is value:
            edges.setdefault(argument, []).append({"input_type": "task_run", "id": tracked[1]})
        if depth < 3:
            if isinstance(value, list):
                return [visit(item, argument, depth + 1) for item in value]
            if isinstance(value, tuple) and not hasattr(value, "_fields"):
                return tuple(visit(item, argument, depth + 1) for item in value)
            if isinstance(value, dict):
                return {key: visit(item, argument, depth + 1) for key, item in value.items()}
            if isinstance(value, set):
                return {visit(item, argument, depth + 1) for item in value}
        return value

    resolved = {name: visit(value, name, 0) for name, value in parameters.items()}
    return resolved, edges, upstream


# --------------------------------------------------------------------------------------------------------------
# Task runs


class RunAndState:
    """The run and its state of a run engine: they exist once `setup` ran; reading them before is a bug of the
    engine, said plainly."""

    noun = "run"
    _run: RunInfo | None
    _state: State | None

    @property
    def run(self) -> RunInfo:
        if self._run is None:
            raise RuntimeError(f"the {self.noun} was read before it was created: call setup() first")
        return self._run

    @run.setter
    def run(self, run: RunInfo) -> None:
        self._run = run

    @property
    def state(self) -> State:
        if self._state is None:
            raise RuntimeError(f"the {self.noun} has no state: call setup() first (or the server answered without one)")
        return self._state

    @state.setter
    def state(self, state: State | None) -> None:
        self._state = state
        self.state_changed(state)

    def state_changed(self, state: State | None) -> None:
        """Called with every state this run takes."""


class TaskRunEngine(RunAndState):
    noun = "task run"

    def __init__(
        self,
        task: Any,
        context: FlowRunContext,
        parameters: dict[str, Any],
        wait_for: list | None,
        dynamic_key: str,
        holder: dict[str, Any] | None = None,
        tags: list[str] | None = None,
    ):
        self.task = task
        self.context = context
        self.client = context.client
        self.raw_parameters = parameters
        self.wait_for = wait_for or []
        self.dynamic_key = dynamic_key
        self.holder = holder if holder is not None else {}
        self.tags = tags or []
        self.parameters: dict[str, Any] = {}
        self._run: RunInfo | None = None
        self._state: State | None = None
        self.attempt = 0
        self.logger: Any = None
        self.cache_details: dict[str, Any] = {}
        self.persists_result = False
        # Run at once and recorded in the background (see `_runs_without_asking`).
        self.recorded = False

    def state_changed(self, state: State | None) -> None:
        """A RUNNING task run with tags may hold tag-limit slots: this process renews their leases while it runs
        (orchestrator/sdk/concurrency.py); leaving RUNNING stops that (the server freed them already)."""
        if self._run is not None and self._run.tags and state is not None:
            renewer = renewer_for(self.client)
            if state.type == StateType.RUNNING:
                renewer.hold(task_run_id=self._run.id)
            else:
                renewer.drop(task_run_id=self._run.id)

    # -- set-up ----------------------------------------------------------------------------------------------
    def setup(self) -> State | None:
        """Resolve inputs and create the task run; returns its final state when it will not execute."""
        parameters, task_inputs, upstream = resolve_inputs(self.context, self.raw_parameters)
        _, wait_edges, wait_upstream = resolve_inputs(self.context, {"wait_for": list(self.wait_for)})
        if wait_edges:
            task_inputs["__wait_for"] = wait_edges["wait_for"]
        self.parameters = parameters
        not_ready = [(ident, state) for ident, state in upstream + wait_upstream if state.type != StateType.COMPLETED]
        task = self.task
        name = _render_name(task.task_run_name, parameters) or f"{task.name}-{self.dynamic_key}"
        policy = {
            "retries": task.retries,
            "retry_delay": task.retry_delay_seconds,
            "retry_jitter_factor": task.retry_jitter_factor,
        }
        if not_ready:
            ident, state = not_ready[0]
            initial = NotReady(message=f"Upstream task run {ident!r} did not reach a 'COMPLETED' state: {state.name}")
        else:
            initial = Pending()
        cache_key, cache_expiration = None, None
        self.persists_result = self._persists_result()
        if not not_ready:
            if task.cache_key_fn is not None:
                cache_key = task.cache_key_fn(TaskRunContext(task, None, parameters), parameters)
            elif self.persists_result:
                # Prefect 3's default cache policy: the same inputs, task code and flow run give the same key.
                cache_key = default_cache_key(task, parameters, self.context.flow_run.id)
            if cache_key is not None:
                cache_key = str(cache_key)
                if task.cache_expiration is not None:
                    cache_expiration = datetime.now(UTC) + task.cache_expiration
                # The Running proposal carries the key: the engine answers it with Cached on a hit.
                self.cache_details["cache_key"] = cache_key
                if cache_expiration:
                    self.cache_details["cache_expiration"] = cache_expiration.isoformat()
                if task.refresh_cache:
                    self.cache_details["refresh_cache"] = True
        tags = list(dict.fromkeys([*task.tags, *self.tags]))
        if not not_ready and self._runs_without_asking(cache_key, tags):
            self._start_recorded(name, tags, task_inputs, policy)
            return None
        self.run = self.client.create_task_run(
            flow_run_id=self.context.flow_run.id,
            task_key=task.task_key,
            dynamic_key=self.dynamic_key,
            name=name,
            tags=tags,
            state=initial,
            # Pending then Running in one round trip; the engine may answer Running with Cached or a WAIT.
            next_state=None if not_ready else Running(state_details=dict(self.cache_details)),
            cache_key=cache_key,
            cache_expiration=cache_expiration,
            task_inputs=task_inputs,
            empirical_policy=policy,
        )
        self.holder["task_run_id"] = self.run.id
        self.state = self.run.state
        self.holder["state"] = self.state
        self.logger = task_run_logger(TaskRunContext(task, self.run, parameters), self.context)
        if not_ready:
            results.attach(self.state, exception=UpstreamTaskError(initial.message))
            self.state._task_run_id = self.run.id  # type: ignore[attr-defined]
            self.logger.info(f"Finished in state {self.state.name}({self.state.message!r})")
            return self.state
        return None

    def _runs_without_asking(self, cache_key: str | None, tags: list[str]) -> bool:
        """Whether the server's task policy could only accept this run's Pending -> Running -> final: no cache
        key (AnswerFromCache), no tags (EnforceConcurrencyLimits), no retries (RetryFailedRuns), and a flow run
        executed for the first time. Such a run starts at once and is recorded in the background."""
        task = self.task
        return (
            self.context.records_task_runs
            and cache_key is None
            and not task.refresh_cache
            and not tags
            and not task.retries
        )

    def _start_recorded(self, name: str, tags: list[str], task_inputs: dict, policy: dict) -> None:
        """Pending then Running now, on this side; the shipper records the run (and later its final state)
        with these times within a batch interval, so the run still shows up live while it runs."""
        pending = Pending()
        running = Running()
        self.run = RunInfo(
            id=str(uuid.uuid4()),
            name=name,
            state=running,
            run_count=1,
            tags=tags,
            flow_run_id=self.context.flow_run.id,
            task_key=self.task.task_key,
            empirical_policy=policy,
        )
        self.recorded = True
        shipper_for(self.client).put_task_run(
            {
                "id": self.run.id,
                "flow_run": self.context.flow_run.id,
                "task_key": self.task.task_key,
                "dynamic_key": self.dynamic_key,
                "name": name,
                "tags": tags,
                "task_inputs": task_inputs,
                "empirical_policy": policy,
                "states": [pending, running],
            }
        )
        self.holder["task_run_id"] = self.run.id
        self.state = running
        self.holder["state"] = running
        self.logger = task_run_logger(TaskRunContext(self.task, self.run, self.parameters), self.context)

    # -- steps ------------------------------------------------------------------------------------------------
    def propose_running(self) -> float | None:
        """Move to RUNNING; returns seconds to wait first, or None when running now (or final: check .state)."""
        if self.state.type == StateType.RUNNING:
            return None
        proposal = Running(name="Retrying" if self.attempt > 0 else None, state_details=dict(self.cache_details))
        response = self.client.set_task_run_state(self.run.id, proposal)
        if response.status == "ABORT":
            raise Abort(response.reason or "the server aborted the task run")
        if response.status == "WAIT":
            if (response.reason or "").startswith(TAG_LIMIT_WAIT) and wait_for_tag_slots(self.client, self.run.tags):
                return 0.0  # a slot freed (or the server waited for one): ask again now
            return max(response.delay_seconds, 0.05)
        self.state = response.state
        self.holder["state"] = self.state
        if self.state.type == StateType.RUNNING:
            return None
        if self.state.type == StateType.SCHEDULED:
            return max(_seconds_until(self.state.scheduled_time), 0.05)
        return None  # a final state (e.g. Cached): the driver sees it is final

    @property
    def is_final(self) -> bool:
        return self._state is not None and (self._state.is_terminal or self.state.name == "NotReady")

    def call_arguments(self) -> tuple[list[Any], dict[str, Any]]:
        return call_arguments(self.task.fn, self.parameters)

    def finish(self, *, value: Any = None, exception: BaseException | None = None) -> float | None:
        """Propose the outcome; returns the delay before a retry, or None when the run is final."""
        self.attempt += 1
        task = self.task
        if exception is None:
            try:
                data = self._persist(value)
            except ResultPersistenceError as exc:
                exception, proposal = exc, Failed(message=str(exc))
            else:
                proposal = Completed(data=data)
                results.attach(proposal, value=value)
        if exception is not None and not isinstance(exception, ResultPersistenceError):
            if isinstance(exception, RunTimeout):
                proposal = TimedOut(message=str(exception))
            elif isinstance(exception, CRASH_EXCEPTIONS):
                proposal = Crashed(message=f"Execution was interrupted by {type(exception).__name__}")
            else:
                proposal = Failed(message=f"Task run encountered an exception {_describe(exception)}")
            self.logger.error(proposal.message, exc_info=not isinstance(exception, (RunTimeout, *CRASH_EXCEPTIONS)))
        if self.recorded and not isinstance(exception, CRASH_EXCEPTIONS):
            # The policy accepts any final state of such a run: record it in the background.
            shipper_for(self.client).put_task_run_state(self.run.id, proposal)
            stored = proposal
        else:
            if self.recorded:  # a forced Crashed needs the run recorded first
                shipper_for(self.client).flush()
            response = self.client.set_task_run_state(
                self.run.id, proposal, force=isinstance(exception, CRASH_EXCEPTIONS)
            )
            stored = response.state or proposal
        if exception is not None:
            results.attach(stored, exception=exception)
        elif stored.type == StateType.COMPLETED:
            results.attach(stored, value=value)
        self.state = stored
        self.holder["state"] = stored
        if stored.type == StateType.SCHEDULED and stored.name == "AwaitingRetry":
            delay = _seconds_until(stored.scheduled_time)
            self.logger.info(
                f"Task run failed with {_describe(exception) if exception else 'an error'}; "
                f"retry {self.attempt} of {task.retries} in {delay:.3g} second(s)"
            )
            return delay
        return None

    def _persists_result(self) -> bool:
        """The task's persist_result, else whether it has a cache_key_fn or its flow persists results."""
        if self.task.persist_result is not None:
            return bool(self.task.persist_result)
        return self.task.cache_key_fn is not None or self.context.flow.persist_result is True

    def _persist(self, value: Any) -> Any:
        task = self.task
        if not self.persists_result:
            return None
        storage = task.result_storage or self.context.flow.result_storage
        return results.ResultStore(storage, task.result_serializer or "pickle").persist(value)

    def complete(self) -> State:
        state = self.state
        state._task_run_id = self.run.id  # type: ignore[attr-defined]
        if state.type == StateType.COMPLETED:
            if state.name == "Cached" and not hasattr(state, "_value") and results.is_result_reference(state.data):
                results.attach(state, value=results.load_result(state.data))
            if hasattr(state, "_value"):
                track_result(self.context, state._value, self.run.id)
            self.logger.info(f"Finished in state {state.name}()")
            _call_hooks(self.task.on_completion, self.task, self.run, state, self.logger)
        elif state.type in (StateType.FAILED, StateType.CRASHED):
            self.logger.error(f"Finished in state {state.name}({state.message!r})")
            _call_hooks(self.task.on_failure, self.task, self.run, state, self.logger)
        return state

    def context_for_call(self) -> TaskRunContext:
        return TaskRunContext(self.task, self.run, self.parameters, log_prints=self._log_prints())

    def _log_prints(self) -> bool:
        if self.task.log_prints is not None:
            return self.task.log_prints
        return self.context.log_prints


def run_task_sync(engine: TaskRunEngine) -> State:
    if engine.setup() is not None:  # NotReady: an upstream run did not complete
        return engine.state
    while True:
        delay = engine.propose_running()
        if delay is not None:
            time.sleep(delay)
            continue
        if engine.is_final:
            return engine.complete()
        call_context = engine.context_for_call()
        token = task_run_context.set(call_context)
        try:
            args, kwargs = engine.call_arguments()
            fn = engine.task.fn
            with prints_logged(call_context.log_prints):
                if inspect.iscoroutinefunction(fn):
                    coroutine = await_with_timeout(fn(*args, **kwargs), engine.task.timeout_seconds, "Task run")
                    value = _run_to_completion(coroutine)
                else:
                    value = call_with_timeout(
                        functools.partial(fn, *args, **kwargs), engine.task.timeout_seconds, "Task run"
                    )
        except CRASH_EXCEPTIONS as exc:
            engine.finish(exception=exc)
            raise
        except BaseException as exc:
            delay = engine.finish(exception=exc)
        else:
            delay = engine.finish(value=value)
        finally:
            task_run_context.reset(token)
        if delay is None:
            return engine.complete()
        time.sleep(delay)


async def run_task_async(engine: TaskRunEngine) -> State:
    """As run_task_sync, for an async task awaited in the flow's event loop: client calls run in threads so
    tasks gathered together proceed concurrently."""
    if await asyncio.to_thread(engine.setup) is not None:  # NotReady
        return engine.state
    while True:
        delay = await asyncio.to_thread(engine.propose_running)
        if delay is not None:
            await asyncio.sleep(delay)
            continue
        if engine.is_final:
            return await asyncio.to_thread(engine.complete)
        call_context = engine.context_for_call()
        token = task_run_context.set(call_context)
        try:
            args, kwargs = engine.call_arguments()
            with prints_logged(call_context.log_prints):
                outcome = engine.task.fn(*args, **kwargs)
                if inspect.isawaitable(outcome):
                    value = await await_with_timeout(outcome, engine.task.timeout_seconds, "Task run")
                else:
                    value = outcome
        except CRASH_EXCEPTIONS as exc:
            engine.finish(exception=exc)
            raise
        except BaseException as exc:
            delay = await asyncio.to_thread(engine.finish, exception=exc)
        else:
            delay = await asyncio.to_thread(engine.finish, value=value)
        finally:
            task_run_context.reset(token)
        if delay is None:
            return await asyncio.to_thread(engine.complete)
        await asyncio.sleep(delay)


def _flow_context_for(task: Any) -> FlowRunContext:
    context = flow_run_context.get()
    if context is None:
        raise MissingContextError(
            f"Task {task.name!r} was called outside a flow. Call it inside a function decorated with @flow, "
            f"or call {task.name}.fn(...) to run the undecorated function."
        )
    return context


def _task_outcome(state: State, return_state: bool) -> Any:
    if return_state:
        return state
    return state.result()


def call_task(task: Any, args: tuple, kwargs: dict, *, return_state: bool, wait_for: list | None) -> Any:
    context = _flow_context_for(task)
    parameters = bind_arguments(task.fn, args, kwargs)
    engine = TaskRunEngine(
        task, context, parameters, wait_for, context.next_dynamic_key(task.task_key), tags=current_tags()
    )
    if inspect.iscoroutinefunction(task.fn) and _in_event_loop():

        async def run_async() -> Any:
            return _task_outcome(await run_task_async(engine), return_state)

        return run_async()
    return _task_outcome(run_task_sync(engine), return_state)


def submit_task(task: Any, args: tuple, kwargs: dict, *, wait_for: list | None) -> TaskRunFuture:
    context = _flow_context_for(task)
    parameters = bind_arguments(task.fn, args, kwargs)
    holder: dict[str, Any] = {}
    engine = TaskRunEngine(
        task, context, parameters, wait_for, context.next_dynamic_key(task.task_key), holder, current_tags()
    )
    return TaskRunFuture(context.task_runner.submit(run_task_sync, engine), holder, task.name)


# --------------------------------------------------------------------------------------------------------------
# Flow runs


def _resolve_returned(value: Any, states: list[State], depth: int) -> Any:
    """`value` with the futures and states in it (at any depth of lists, tuples, sets and dicts) replaced by their
    results; their final states are appended to `states`."""
    if isinstance(value, TaskRunFuture):
        value = value.final_state()
    if isinstance(value, State):
        states.append(value)
        return getattr(value, "_value", None)
    if depth >= 20:
        return value
    if isinstance(value, list):
        return [_resolve_returned(item, states, depth + 1) for item in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_resolve_returned(item, states, depth + 1) for item in value)
    if isinstance(value, set | frozenset):
        return type(value)(_resolve_returned(item, states, depth + 1) for item in value)
    if isinstance(value, dict):
        return {key: _resolve_returned(item, states, depth + 1) for key, item in value.items()}
    return value


class FlowRunEngine(RunAndState):
    noun = "flow run"

    def __init__(
        self, flow: Any, args: tuple, kwargs: dict, flow_run_id: str | None = None, wait_for: list | None = None
    ):
        self.flow = flow
        self.args = args
        self.kwargs = kwargs
        self.wait_for = wait_for or []
        # Which call of its parent this subflow is, when its result may be reused by a retry of the parent.
        self.subflow_call_key: str | None = None
        # An existing run to execute (a deployment's run claimed by `serve` or a worker) instead of a new one.
        self.flow_run_id = flow_run_id
        self.parent = flow_run_context.get()
        if self.parent is None:
            # A flow script whose server is down ends with one `error: ...` line, not a traceback.
            install_excepthook()
        self.client = self.parent.client if self.parent else get_client()
        self._run: RunInfo | None = None
        self._state: State | None = None
        self.parameters: dict[str, Any] = {}
        self.parent_task_run: RunInfo | None = None
        self._context: FlowRunContext | None = None
        self.logger: Any = None
        self.attempt = 0
        self.value: Any = None
        # What an attempt sets up around the flow's function (print patched for log_prints), undone at its end.
        self._attempt_scope = contextlib.ExitStack()

    @property
    def context(self) -> FlowRunContext:
        if self._context is None:
            raise RuntimeError("the flow run's context was read before it was made: call setup() first")
        return self._context

    @context.setter
    def context(self, context: FlowRunContext) -> None:
        self._context = context

    def setup(self) -> State | None:
        """Create the flow run, Running unless its parameters are invalid (then Failed before any user code)."""
        flow = self.flow
        flow_id = self.client.ensure_flow(flow.name)
        error: ParameterValidationError | None = None
        task_inputs: dict[str, list[dict]] = {}
        not_ready: list[tuple[str | None, State]] = []
        try:
            parameters = bind_arguments(flow.fn, self.args, self.kwargs)
            if self.parent is not None:
                # A subflow takes futures and states like a task: their results, after they are final.
                parameters, task_inputs, upstream = resolve_inputs(self.parent, parameters)
                _, wait_edges, wait_upstream = resolve_inputs(self.parent, {"wait_for": list(self.wait_for)})
                if wait_edges:
                    task_inputs["__wait_for"] = wait_edges["wait_for"]
                not_ready = [pair for pair in upstream + wait_upstream if pair[1].type != StateType.COMPLETED]
            if flow.should_validate_parameters and not not_ready:
                parameters = validate_parameters(flow.fn, parameters)
        except ParameterValidationError as exc:
            error, parameters = exc, {**self.kwargs}
        self.parameters = parameters
        if self.parent is not None and error is None and not not_ready:
            reused = self.reusable_subflow_state()
            if reused is not None:
                return reused
        if self.parent is not None:
            # The parent flow's record of this call: it mirrors the subflow's states (see `complete`).
            initial = Pending()
            if not_ready:
                ident, upstream_state = not_ready[0]
                initial = NotReady(
                    message=f"Upstream task run {ident!r} did not reach a 'COMPLETED' state: {upstream_state.name}"
                )
            self.parent_task_run = self.client.create_task_run(
                flow_run_id=self.parent.flow_run.id,
                task_key=f"subflow:{flow.name}",
                dynamic_key=self.parent.next_dynamic_key(f"subflow:{flow.name}"),
                name=flow.name,
                tags=current_tags(),
                state=initial,
                next_state=None if not_ready else Running(),
                task_inputs=task_inputs,
            )
            if not_ready:
                # Like a task, the subflow does not run on missing data: only the parent's record of it exists.
                self.state = results.attach(
                    self.parent_task_run.state or initial, exception=UpstreamTaskError(initial.message)
                )
                self.state._task_run_id = self.parent_task_run.id  # type: ignore[attr-defined]
                flow_run_logger(self.parent).info(f"Subflow {flow.name!r} did not run: {initial.message}")
                return self.state
        name = None
        if error is None:
            name = _render_name(flow.flow_run_name, parameters)
        if self.flow_run_id is not None:
            self.run = self.client.read_flow_run(self.flow_run_id)
        else:
            self.run = self.client.create_flow_run(
                flow_id=flow_id,
                name=name,
                parameters=jsonable(parameters),
                tags=list(dict.fromkeys([*flow.tags, *current_tags()])),
                state=Pending(),
                # Bad parameters fail the run before any user code runs, so it never was Running.
                next_state=Failed(message=str(error)) if error is not None else Running(),
                parent_task_run_id=self.parent_task_run.id if self.parent_task_run else None,
                empirical_policy={"retries": flow.retries, "retry_delay": flow.retry_delay_seconds},
                flow_version=flow.version,
            )
        self.state = self.run.state
        if error is not None and self.state.type != StateType.FAILED:  # an adopted run (deployments, serve)
            self.state = self.client.set_flow_run_state(self.run.id, Failed(message=str(error))).state
        self.context = FlowRunContext(
            flow=flow,
            flow_run=self.run,
            client=self.client,
            task_runner=None,
            result_store=None,
            log_prints=flow.log_prints,
            parameters=parameters,
            records_task_runs=self.flow_run_id is None or not self.run.run_count,
        )
        self.logger = flow_run_logger(self.context)
        if error is not None:
            self.logger.error(f"Parameter validation failed: {error}")
            results.attach(self.state, exception=error)
            return self.state
        self.logger.info(f"Beginning flow run {self.run.name!r} for flow {flow.name!r}")
        return None

    def persists_result(self) -> bool:
        """The flow's persist_result; a subflow without one follows its parent, as in Prefect."""
        if self.flow.persist_result is not None:
            return bool(self.flow.persist_result)
        return self.parent is not None and self.parent.flow.persist_result is True

    def reusable_subflow_state(self) -> State | None:
        """The final state of this subflow call in an earlier attempt of the parent flow run, when it completed with
        a persisted result: a flow retry runs again only what did not complete. The call is known by the subflow's
        name, its parameters and how many such calls came before it in the attempt."""
        parent = self.parent
        if parent is None or not self.persists_result():
            return None
        digest = inputs_hash(self.flow.name, self.parameters)
        if digest is None:
            return None
        with parent._lock:
            occurrence = parent.subflow_calls.get(digest, 0)
            parent.subflow_calls[digest] = occurrence + 1
        self.subflow_call_key = f"{digest}-{occurrence}"
        earlier = parent.completed_subflows.get(self.subflow_call_key)
        if earlier is not None:
            self.state = earlier
            flow_run_logger(parent).info(
                f"Subflow {self.flow.name!r} completed in an earlier attempt of this flow run: its result is reused"
            )
        return earlier

    def propose_running(self) -> float | None:
        if self.state.type == StateType.RUNNING:
            return None
        response = self.client.set_flow_run_state(self.run.id, Running(name="Retrying" if self.attempt > 0 else None))
        if response.status == "ABORT":
            raise Abort(response.reason or "the server aborted the flow run")
        if response.status == "WAIT":
            return max(response.delay_seconds, 0.05)
        self.state = response.state
        if self.state.type == StateType.SCHEDULED:
            return max(_seconds_until(self.state.scheduled_time), 0.05)
        return None

    def start_attempt(self) -> Any:
        """Fresh task runner and context for this attempt; returns the context token."""
        self.context.task_runner = self.flow.task_runner.start()
        self.context.result_ids = {}
        self.context.subflow_calls = {}
        self._attempt_scope.enter_context(prints_logged(self.flow.log_prints))
        return flow_run_context.set(self.context)

    def end_attempt(self, token: Any, *, wait: bool = True) -> None:
        try:
            self.context.task_runner.shutdown(wait=wait)
        finally:
            flow_run_context.reset(token)
            self._attempt_scope.close()

    def final_state_from(self, value: Any) -> tuple[State, Any]:
        """The flow's final state from its return value, as in Prefect 3: a State it returned, as is; else the
        states of the futures and states it returned (also inside lists, tuples, sets and dicts): all Completed
        gives Completed, else Failed with "n/m states failed"; else Completed. Task runs it started but neither
        returned nor raised from do not decide it (their own runs record how they ended)."""
        if isinstance(value, State) and not hasattr(value, "_task_run_id"):  # made by the user: use it as is
            chosen = State(type=value.type, name=value.name, message=value.message)
            if hasattr(value, "_exception"):
                results.attach(chosen, exception=value._exception)
            return chosen, getattr(value, "_value", None)
        returned: list[State] = []
        value = _resolve_returned(value, returned, 0)
        bad = [state for state in returned if state.type != StateType.COMPLETED]
        if bad:
            exception = getattr(bad[0], "_exception", None)
            if exception is None and bad[0].name == "NotReady":
                exception = UpstreamTaskError(bad[0].message or "an upstream run did not complete")
            message = f"{len(bad)}/{len(returned)} states failed" if len(returned) > 1 else bad[0].message
            return results.attach(Failed(message=message or "a task run failed"), exception=exception), value
        return Completed(), value

    def finish(self, *, value: Any = None, exception: BaseException | None = None) -> float | None:
        self.attempt += 1
        flow = self.flow
        if exception is None:
            proposal, value = self.final_state_from(value)
            if proposal.type == StateType.COMPLETED:
                try:
                    if self.persists_result():
                        store = results.ResultStore(flow.result_storage, flow.result_serializer or "pickle")
                        proposal.data = store.persist(value)
                    results.attach(proposal, value=value)
                except ResultPersistenceError as exc:
                    exception, proposal = exc, Failed(message=str(exc))
            else:
                exception = getattr(proposal, "_exception", None)
        elif isinstance(exception, RunTimeout):
            proposal = TimedOut(message=str(exception))
        elif isinstance(exception, CRASH_EXCEPTIONS):
            proposal = Crashed(message=f"Execution was interrupted by {type(exception).__name__}")
        else:
            proposal = Failed(message=f"Flow run encountered an exception: {_describe(exception)}")
            self.logger.error(proposal.message, exc_info=exception)
        shipper_for(self.client).flush()  # the flow's task runs are on record before its final state
        response = self.client.set_flow_run_state(self.run.id, proposal, force=isinstance(exception, CRASH_EXCEPTIONS))
        stored = response.state or proposal
        if exception is not None:
            results.attach(stored, exception=exception)
        elif stored.type == StateType.COMPLETED:
            results.attach(stored, value=value)
        self.state = stored
        if stored.type == StateType.SCHEDULED and stored.name == "AwaitingRetry":
            delay = _seconds_until(stored.scheduled_time)
            self.logger.info(f"Retry {self.attempt} of {flow.retries} in {delay:.3g} second(s)")
            return delay
        return None

    def complete(self) -> State:
        state = self.state
        if self._run is None:  # a subflow that did not run (NotReady): only its parent's record of it exists
            return state
        flow = self.flow
        level = "info" if state.type == StateType.COMPLETED else "error"
        detail = f"({state.message!r})" if state.message and state.type != StateType.COMPLETED else "()"
        getattr(self.logger, level)(f"Finished in state {state.name}{detail}")
        hooks = {
            StateType.COMPLETED: flow.on_completion,
            StateType.FAILED: flow.on_failure,
            StateType.CRASHED: flow.on_crashed,
            StateType.CANCELLED: flow.on_cancellation,
        }.get(state.type, [])
        _call_hooks(hooks, flow, self.run, state, self.logger)
        if self.parent_task_run is not None:
            mirror = State(type=state.type, name=state.name, message=state.message)
            self.client.set_task_run_state(self.parent_task_run.id, mirror, force=True)
            state._task_run_id = self.parent_task_run.id  # type: ignore[attr-defined]
            if self.subflow_call_key and state.type == StateType.COMPLETED and state.data is not None:
                self.parent.completed_subflows[self.subflow_call_key] = state  # type: ignore[union-attr]
        shipper_for(self.client).flush()
        return state

    def outcome(self, return_state: bool) -> Any:
        if return_state:
            return self.state
        return self.state.result()


def run_flow_sync(
    flow: Any,
    args: tuple,
    kwargs: dict,
    *,
    return_state: bool,
    flow_run_id: str | None = None,
    wait_for: list | None = None,
) -> Any:
    engine = FlowRunEngine(flow, args, kwargs, flow_run_id, wait_for)
    if engine.setup() is not None:
        engine.complete()
        return engine.outcome(return_state)
    while True:
        delay = engine.propose_running()
        if delay is not None:
            time.sleep(delay)
            continue
        if engine.state.is_terminal:
            break
        token = engine.start_attempt()
        try:
            call_args, call_kwargs = call_arguments(flow.fn, engine.parameters)
            call = functools.partial(flow.fn, *call_args, **call_kwargs)
            value = call_with_timeout(call, flow.timeout_seconds, "Flow run")
            engine.end_attempt(token)
            token = None
        except CRASH_EXCEPTIONS as exc:
            engine.finish(exception=exc)
            engine.complete()
            raise
        except BaseException as exc:
            if token is not None:
                engine.end_attempt(token, wait=not isinstance(exc, RunTimeout))
                token = None
            delay = engine.finish(exception=exc)
        else:
            delay = engine.finish(value=value)
        finally:
            if token is not None:
                engine.end_attempt(token)
        if delay is None:
            break
        time.sleep(delay)
    engine.complete()
    return engine.outcome(return_state)


async def run_flow_async(
    flow: Any,
    args: tuple,
    kwargs: dict,
    *,
    return_state: bool,
    flow_run_id: str | None = None,
    wait_for: list | None = None,
) -> Any:
    """As run_flow_sync, in the caller's event loop; client calls and hooks run in threads."""
    engine = await asyncio.to_thread(FlowRunEngine, flow, args, kwargs, flow_run_id, wait_for)
    if await asyncio.to_thread(engine.setup) is not None:
        await asyncio.to_thread(engine.complete)
        return engine.outcome(return_state)
    while True:
        delay = await asyncio.to_thread(engine.propose_running)
        if delay is not None:
            await asyncio.sleep(delay)
            continue
        if engine.state.is_terminal:
            break
        token = engine.start_attempt()
        try:
            call_args, call_kwargs = call_arguments(flow.fn, engine.parameters)
            value = await await_with_timeout(flow.fn(*call_args, **call_kwargs), flow.timeout_seconds, "Flow run")
        except CRASH_EXCEPTIONS as exc:
            engine.end_attempt(token)
            engine.finish(exception=exc)
            engine.complete()
            raise
        except BaseException as exc:
            engine.end_attempt(token, wait=not isinstance(exc, RunTimeout))
            delay = await asyncio.to_thread(engine.finish, exception=exc)
        else:
            engine.end_attempt(token)
            delay = await asyncio.to_thread(engine.finish, value=value)
        if delay is None:
            break
        await asyncio.sleep(delay)
    await asyncio.to_thread(engine.complete)
    return engine.outcome(return_state)
