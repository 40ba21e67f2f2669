"""Writes for deployments and their schedules, and the scheduler's two server services.

`schedule_upcoming_runs()` creates the upcoming Scheduled runs of every active schedule, idempotently;
`mark_late_runs()` moves Scheduled runs past their time (plus a grace period) to Late. Both are plain
functions that the Celery tasks of apps/server_services call; docs/scheduler.md explains the design.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.errors import InvalidInput
from apps.core.names import generate_run_name
from apps.deployments import schedules as schedule_rules
from apps.deployments.models import Deployment, DeploymentSchedule
from apps.flows.models import Flow
from apps.orchestration import engine
from apps.runs import services as run_services
from apps.runs.models import FlowRun
from apps.work_pools.services import work_pool_ensure
from orchestrator.states import Late, Scheduled, StateType

logger = logging.getLogger(__name__)

# Fields whose change makes the runs already scheduled wrong (they were created with the old values).
RUN_SHAPING_FIELDS = ("parameters", "tags", "work_pool_name", "work_queue_name", "version", "empirical_policy")
EDITABLE_FIELDS = (
    "description",
    "version",
    "entrypoint",
    "path",
    "storage_block",
    "storage_path",
    "parameters",
    "parameter_openapi_schema",
    "tags",
    "work_pool_name",
    "work_queue_name",
    "paused",
    "concurrency_limit",
    "collision_strategy",
    "empirical_policy",
)
# Deployments handled per write transaction by the scheduler (keeps SQLite's write lock short).
SCHEDULER_CHUNK = 100
LATE_RUNS_BATCH = 500
LATE_RUNS_MAX_BATCHES = 20


# --------------------------------------------------------------------------------------------------------------
# Parameters


def _json_path(prefix: str, segments: Iterable[Any]) -> str:
    text = prefix
    for segment in segments:
        text += f"[{segment}]" if isinstance(segment, int) else f".{segment}"
    return text


def parameters_check_schema(*, schema: dict[str, Any] | None) -> None:
    """Refuse a parameter schema that is not a JSON schema (400 naming parameter_openapi_schema)."""
    if schema is None:
        return
    from jsonschema import Draft202012Validator, exceptions, validators

    try:
        validators.validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except exceptions.SchemaError as exc:
        where = _json_path("parameter_openapi_schema", exc.path)
        raise InvalidInput(f"not a valid JSON schema: {exc.message}", field=where) from None
    except Exception as exc:  # an unknown $schema dialect, a reference that cannot be resolved, ...
        raise InvalidInput(f"not a usable JSON schema: {exc}", field="parameter_openapi_schema") from None


def parameters_validate(
    *, parameters: dict[str, Any], schema: dict[str, Any] | None, require_all: bool, field: str = "parameters"
) -> None:
    """Check parameters against the deployment's schema; the error names the first bad parameter.

    Defaults stored on a deployment need not give every required parameter (a run may give the rest);
    the parameters of a run must (`require_all`)."""
    if not schema:
        return
    from jsonschema import Draft202012Validator, validators

    if require_all:
        for name in schema.get("required") or []:
            if isinstance(name, str) and name not in parameters:
                raise InvalidInput("this parameter is required", field=f"{field}.{name}")
    checked = {key: value for key, value in schema.items() if key != "required"}
    try:
        validator = validators.validator_for(checked, default=Draft202012Validator)(checked)
        errors = sorted(validator.iter_errors(parameters), key=lambda error: [str(part) for part in error.path])
    except Exception as exc:
        raise InvalidInput(f"the parameter schema could not be applied: {exc}", field=field) from None
    if errors:
        first = errors[0]
        raise InvalidInput(first.message[:500], field=_json_path(field, first.path))


# --------------------------------------------------------------------------------------------------------------
# Deployments


def deployment_upsert(
    *, flow: Flow, name: str, values: dict[str, Any], schedules: list[dict[str, Any]] | None = None
) -> tuple[Deployment, bool]:
    """Create the deployment (flow, name), or update it with `values` (fields not given keep their value):
    redeploying. `schedules` (normalised, `[{"schedule": {...}, "active": bool}]`) replaces the schedule set;
    None keeps it. Future auto-scheduled runs that no longer apply are deleted and the right ones created.
    Returns (deployment, created)."""
    unknown = set(values) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not deployment fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        deployment = _locked(Deployment.objects.filter(flow=flow, name=name))
        created = deployment is None
        if created:
            deployment = Deployment(flow=flow, name=name)
        changed = _apply_values(deployment, values)
        if created:
            try:
                with transaction.atomic():
                    deployment.save(force_insert=True)
            except IntegrityError:  # created by a concurrent request: update that one instead
                created = False
                deployment = _locked(Deployment.objects.filter(flow=flow, name=name))
                changed = _apply_values(deployment, values)
        if not created:
            deployment.save()
        if deployment.work_pool_name:
            # Deploying to a pool that does not exist yet creates it (a process pool with its default queue).
            work_pool_ensure(name=deployment.work_pool_name)
        stale_schedule_ids = _replace_schedules(deployment, schedules) if schedules is not None else []
        if not created:
            if deployment.paused or any(field in changed for field in RUN_SHAPING_FIELDS):
                _delete_future_auto_runs(deployment=deployment)
            elif stale_schedule_ids:
                _delete_future_auto_runs(deployment=deployment, schedule_ids=stale_schedule_ids)
    if not deployment.paused:
        schedule_upcoming_runs(deployment_ids=[deployment.id])
    return deployment, created


def deployment_update(*, deployment: Deployment, values: dict[str, Any], schedules: list | None = None) -> Deployment:
    """Change some fields (and optionally replace the schedules) of an existing deployment."""
    updated, _ = deployment_upsert(flow=deployment.flow, name=deployment.name, values=values, schedules=schedules)
    return updated


def _apply_values(deployment: Deployment, values: dict[str, Any]) -> set[str]:
    merged_parameters = values.get("parameters", deployment.parameters)
    schema = values.get("parameter_openapi_schema", deployment.parameter_openapi_schema)
    if "parameter_openapi_schema" in values:
        parameters_check_schema(schema=schema)
    parameters_validate(parameters=merged_parameters or {}, schema=schema, require_all=False)
    storage_block = values.get("storage_block", deployment.storage_block)
    if values.get("storage_path", deployment.storage_path) and not storage_block:
        raise InvalidInput("a code prefix needs the storage block that holds it (storage_block)", field="storage_path")
    changed = set()
    for field, value in values.items():
        if getattr(deployment, field) != value:
            setattr(deployment, field, value)
            changed.add(field)
    return changed


def _locked(queryset) -> Any:
    """The first row of `queryset`, locked until the transaction ends (PostgreSQL; SQLite's IMMEDIATE
    transactions already hold the database's write lock)."""
    # Ordered by id: the model's default order joins the flow, and FOR UPDATE would lock that row too.
    return queryset.order_by("pk").select_for_update().first()


def _replace_schedules(deployment: Deployment, desired: list[dict[str, Any]]) -> list[uuid.UUID]:
    """Make the deployment's schedules match `desired`, keeping rows whose schedule is unchanged (their runs
    stay); returns the ids of schedules removed or deactivated, whose future runs no longer apply."""
    existing = list(DeploymentSchedule.objects.select_for_update().filter(deployment=deployment).order_by("created"))
    stale: list[uuid.UUID] = []
    kept: set[uuid.UUID] = set()
    for item in desired:
        match = next((row for row in existing if row.id not in kept and row.schedule == item["schedule"]), None)
        if match is None:
            DeploymentSchedule.objects.create(deployment=deployment, schedule=item["schedule"], active=item["active"])
            continue
        kept.add(match.id)
        if match.active != item["active"]:
            match.active = item["active"]
            match.save(update_fields=["active", "updated"])
            if not match.active:
                stale.append(match.id)
    removed = [row.id for row in existing if row.id not in kept]
    DeploymentSchedule.objects.filter(id__in=removed).delete()
    return stale + removed


def deployment_delete(*, deployment: Deployment) -> None:
    """Delete the deployment and its future auto-scheduled runs (its past runs stay, unlinked)."""
    with transaction.atomic():
        _delete_future_auto_runs(deployment=deployment)
        deployment.delete()


def deployment_pause(*, deployment: Deployment) -> Deployment:
    """Stop scheduling: the deployment's future auto-scheduled runs that are still Scheduled are deleted."""
    with transaction.atomic():
        locked = _locked(Deployment.objects.filter(pk=deployment.pk))
        if locked is None:
            return deployment
        if not locked.paused:
            locked.paused = True
            locked.save(update_fields=["paused", "updated"])
        _delete_future_auto_runs(deployment=locked)
    return locked


def deployment_resume(*, deployment: Deployment) -> Deployment:
    """Schedule again from now on (runs missed while paused are not created)."""
    with transaction.atomic():
        locked = _locked(Deployment.objects.filter(pk=deployment.pk))
        if locked is None:
            return deployment
        if locked.paused:
            locked.paused = False
            locked.save(update_fields=["paused", "updated"])
    schedule_upcoming_runs(deployment_ids=[locked.id])
    return locked


def deployment_schedule_create(*, deployment: Deployment, schedule: dict[str, Any], active: bool = True):
    """Add a schedule (normalised) to a deployment and create its upcoming runs."""
    with transaction.atomic():
        _locked(Deployment.objects.filter(pk=deployment.pk))
        row = DeploymentSchedule.objects.create(deployment=deployment, schedule=schedule, active=active)
    if not deployment.paused:
        schedule_upcoming_runs(deployment_ids=[deployment.id])
    return row


def deployment_schedule_update(
    *, schedule_row: DeploymentSchedule, schedule: dict[str, Any] | None = None, active: bool | None = None
) -> DeploymentSchedule:
    """Change a schedule or switch it on or off; its future runs are replaced by the right ones."""
    with transaction.atomic():
        deployment = _locked(Deployment.objects.filter(pk=schedule_row.deployment_id))
        changed = False
        if schedule is not None and schedule != schedule_row.schedule:
            schedule_row.schedule = schedule
            changed = True
        if active is not None and active != schedule_row.active:
            schedule_row.active = active
            changed = True
        if changed:
            schedule_row.save()
            _delete_future_auto_runs(deployment=deployment, schedule_ids=[schedule_row.id])
    if changed and not deployment.paused:
        schedule_upcoming_runs(deployment_ids=[deployment.id])
    return schedule_row


def deployment_schedule_delete(*, schedule_row: DeploymentSchedule) -> None:
    """Remove a schedule and its future auto-scheduled runs."""
    with transaction.atomic():
        deployment = _locked(Deployment.objects.filter(pk=schedule_row.deployment_id))
        schedule_row.delete()
        if deployment is not None:
            _delete_future_auto_runs(deployment=deployment, schedule_ids=[schedule_row.id])


def deployment_create_flow_run(
    *,
    deployment: Deployment,
    parameters: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    scheduled_time: datetime | None = None,
    name: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[FlowRun, bool]:
    """An ad hoc run of the deployment, Scheduled for now (or `scheduled_time`); `parameters` override the
    deployment's defaults and are checked against its parameter schema. Returns (run, created)."""
    merged = {**(deployment.parameters or {}), **(parameters or {})}
    parameters_validate(parameters=merged, schema=deployment.parameter_openapi_schema, require_all=True)
    return run_services.flow_run_create(
        flow=deployment.flow,
        name=name,
        parameters=merged,
        tags=list(dict.fromkeys([*(deployment.tags or []), *(tags or [])])),
        state=Scheduled(scheduled_time=scheduled_time or timezone.now()),
        deployment_id=deployment.id,
        idempotency_key=idempotency_key,
        work_pool_name=deployment.work_pool_name,
        work_queue_name=deployment.work_queue_name,
        flow_version=deployment.version,
        empirical_policy=dict(deployment.empirical_policy or {}),
    )


# --------------------------------------------------------------------------------------------------------------
# The scheduler


def idempotency_key(*, deployment_id: uuid.UUID, schedule_id: uuid.UUID, scheduled_time: datetime) -> str:
    """One key per (deployment, schedule, time): the database's unique constraint refuses a second run."""
    return f"{_schedule_key_prefix(deployment_id, schedule_id)}{scheduled_time.isoformat()}"


def _schedule_key_prefix(deployment_id: uuid.UUID, schedule_id: uuid.UUID) -> str:
    return f"scheduled:{deployment_id}:{schedule_id}:"


def _delete_future_auto_runs(*, deployment: Deployment, schedule_ids: list[uuid.UUID] | None = None) -> int:
    """Delete the deployment's auto-scheduled runs still waiting (Scheduled, in the future), optionally only
    those of some schedules. Runs being claimed right now (locked) are left to their claimer."""
    queryset = FlowRun.objects.filter(
        deployment=deployment,
        auto_scheduled=True,
        state_type=StateType.SCHEDULED,
        state_name="Scheduled",
        expected_start_time__gt=timezone.now(),
    )
    if schedule_ids is not None:
        if not schedule_ids:
            return 0
        prefixes = Q()
        for schedule_id in schedule_ids:
            prefixes |= Q(idempotency_key__startswith=_schedule_key_prefix(deployment.id, schedule_id))
        queryset = queryset.filter(prefixes)
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            queryset = queryset.select_for_update(skip_locked=True)
        run_ids = list(queryset.order_by().values_list("id", flat=True))
        if run_ids:
            FlowRun.objects.filter(id__in=run_ids).delete()
    return len(run_ids)


def _window(now: datetime) -> tuple[datetime, datetime]:
    horizon = now + timedelta(seconds=settings.ORCHESTRATOR_SCHEDULER_HORIZON_SECONDS)
    hard_end = now + timedelta(seconds=settings.ORCHESTRATOR_SCHEDULER_MAX_HORIZON_SECONDS)
    return horizon, hard_end


# Occurrences computed on earlier passes of this process, reused while they cover the window.
_occurrences = schedule_rules.OccurrenceCache()


def _wanted_times(schedule: dict[str, Any], now: datetime) -> list[datetime]:
    horizon, hard_end = _window(now)
    try:
        return _occurrences.occurrences(
            schedule,
            start=now,
            end=horizon,
            min_count=settings.ORCHESTRATOR_SCHEDULER_MIN_RUNS,
            max_count=settings.ORCHESTRATOR_SCHEDULER_MAX_RUNS,
            hard_end=hard_end,
        )
    except Exception:  # a stored schedule that can no longer be evaluated must not stop the others
        logger.exception("schedule %r could not be evaluated", schedule)
        return []


def _existing_keys(deployment_ids: list[uuid.UUID], now: datetime) -> set[str]:
    return set(
        FlowRun.objects.filter(deployment_id__in=deployment_ids, auto_scheduled=True, expected_start_time__gte=now)
        .order_by()
        .values_list("idempotency_key", flat=True)
    )


def _missing_runs(schedule_rows: list[dict[str, Any]], now: datetime) -> dict[uuid.UUID, list[tuple[str, datetime]]]:
    """Per deployment, the (key, time) of the runs its schedules want that do not exist yet."""
    wanted: dict[uuid.UUID, list[tuple[str, datetime]]] = defaultdict(list)
    for row in schedule_rows:
        for moment in _wanted_times(row["schedule"], now):
            key = idempotency_key(deployment_id=row["deployment_id"], schedule_id=row["id"], scheduled_time=moment)
            wanted[row["deployment_id"]].append((key, moment))
    if not wanted:
        return {}
    existing: set[str] = set()
    deployment_ids = list(wanted)
    for start in range(0, len(deployment_ids), 500):
        existing |= _existing_keys(deployment_ids[start : start + 500], now)
    missing = {}
    for deployment_id, items in wanted.items():
        absent = [(key, moment) for key, moment in items if key not in existing]
        if absent:
            missing[deployment_id] = absent
    return missing


def schedule_upcoming_runs(*, deployment_ids: list[uuid.UUID] | None = None, now: datetime | None = None) -> int:
    """Create the upcoming Scheduled runs of every active schedule of every non-paused deployment (or of the
    given deployments); returns how many were created. Safe to run twice at once: see docs/scheduler.md."""
    now = now or timezone.now()
    rows = DeploymentSchedule.objects.filter(active=True, deployment__paused=False)
    if deployment_ids is not None:
        rows = rows.filter(deployment_id__in=deployment_ids)
    # A first pass without locks finds what is missing: an idle pass writes nothing and takes no lock.
    missing = _missing_runs(list(rows.values("id", "deployment_id", "schedule")), now)
    created = 0
    pending = sorted(missing)
    for start in range(0, len(pending), SCHEDULER_CHUNK):
        created += _create_missing_runs(pending[start : start + SCHEDULER_CHUNK], now)
    return created


def _create_missing_runs(deployment_ids: list[uuid.UUID], now: datetime) -> int:
    """Under the deployments' row locks (taken in id order, as every writer of a deployment takes its own),
    recompute what is missing (the first pass may be stale) and create it with the engine's bulk writer."""
    with transaction.atomic():
        locked = Deployment.objects.filter(id__in=deployment_ids, paused=False).order_by("id")
        if connection.features.has_select_for_update:
            locked = locked.select_for_update(no_key=connection.vendor == "postgresql")
        deployments = {deployment.id: deployment for deployment in locked}
        if not deployments:
            return 0
        schedule_rows = list(
            DeploymentSchedule.objects.filter(deployment_id__in=list(deployments), active=True).values(
                "id", "deployment_id", "schedule"
            )
        )
        missing = _missing_runs(schedule_rows, now)
        runs, states = [], []
        for deployment_id, items in missing.items():
            deployment = deployments[deployment_id]
            for key, moment in items:
                runs.append(_scheduled_run(deployment, key))
                states.append(Scheduled(scheduled_time=moment))
        if not runs:
            return 0
        try:
            with transaction.atomic():
                results = engine.set_initial_states_in_bulk(kind=engine.FLOW_RUN, runs=runs, states=states)
            return sum(1 for result in results if result.state is not None)
        except IntegrityError:
            # A run with one of these keys appeared anyway (created outside the scheduler): one by one,
            # each duplicate is answered with the existing run.
            return _create_one_by_one(deployments, missing)


def _create_one_by_one(deployments: dict[uuid.UUID, Deployment], missing: dict) -> int:
    created = 0
    for deployment_id, items in missing.items():
        deployment = deployments[deployment_id]
        for key, moment in items:
            template = _scheduled_run(deployment, key)
            _, is_new = run_services.flow_run_create(
                flow=deployment.flow,
                name=template.name,
                parameters=template.parameters,
                tags=template.tags,
                state=Scheduled(scheduled_time=moment),
                deployment_id=deployment.id,
                idempotency_key=key,
                work_pool_name=deployment.work_pool_name,
                work_queue_name=deployment.work_queue_name,
                flow_version=deployment.version,
                empirical_policy=dict(deployment.empirical_policy or {}),
            )
            if is_new:
                FlowRun.objects.filter(flow=deployment.flow_id, idempotency_key=key).update(auto_scheduled=True)
                created += 1
    return created


def _scheduled_run(deployment: Deployment, key: str) -> FlowRun:
    return FlowRun(
        flow_id=deployment.flow_id,
        deployment_id=deployment.id,
        name=generate_run_name(),
        parameters=dict(deployment.parameters or {}),
        tags=list(deployment.tags or []),
        idempotency_key=key,
        auto_scheduled=True,
        work_pool_name=deployment.work_pool_name,
        work_queue_name=deployment.work_queue_name,
        flow_version=deployment.version,
        empirical_policy=dict(deployment.empirical_policy or {}),
    )


def mark_late_runs(*, now: datetime | None = None) -> int:
    """Move Scheduled runs whose time plus the grace period has passed to Late (still SCHEDULED), through
    the engine; returns how many were marked. A run that changed state meanwhile (a worker claimed it) is
    left alone: the proposal carries the state timestamp it saw, and the engine rejects it as stale."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.ORCHESTRATOR_LATE_RUNS_GRACE_SECONDS)
    marked = 0
    seen: set[uuid.UUID] = set()
    for _ in range(LATE_RUNS_MAX_BATCHES):
        rows = list(
            FlowRun.objects.filter(
                state_type=StateType.SCHEDULED, state_name="Scheduled", next_scheduled_start_time__lte=cutoff
            )
            .exclude(id__in=seen)
            .order_by("next_scheduled_start_time")
            .values_list("id", "state_timestamp", "next_scheduled_start_time")[:LATE_RUNS_BATCH]
        )
        for run_id, state_timestamp, scheduled_time in rows:
            seen.add(run_id)
            result = engine.propose_state(
                kind=engine.FLOW_RUN,
                run_id=run_id,
                state=Late(scheduled_time=scheduled_time),
                proposed_at=state_timestamp,
            )
            if result.accepted:
                marked += 1
        if len(rows) < LATE_RUNS_BATCH:
            break
    return marked
