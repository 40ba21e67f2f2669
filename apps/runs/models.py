"""Flow runs, task runs and their full state history.

A run's current state is kept denormalised on the run row (state_type, state_name, ...) so lists and
filters never join the history; `orchestration.engine.propose_state` is the only code that writes it.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from apps.core.models import BaseModel
from orchestrator.states import State, StateType

STATE_TYPE_CHOICES = [(t.value, t.value.title()) for t in StateType]


class RunBase(BaseModel):
    name = models.CharField(max_length=200)
    tags = models.JSONField(default=list, blank=True)
    # Current state (copied from the newest history row).
    state_id = models.UUIDField(null=True, blank=True, editable=False)
    state_type = models.CharField(max_length=16, choices=STATE_TYPE_CHOICES, null=True, blank=True)
    state_name = models.CharField(max_length=32, null=True, blank=True)
    state_timestamp = models.DateTimeField(null=True, blank=True)
    state_message = models.TextField(null=True, blank=True)
    state_details = models.JSONField(default=dict, blank=True)
    state_data = models.JSONField(null=True, blank=True)
    # Run details kept by the engine's bookkeeping rules.
    run_count = models.PositiveIntegerField(default=0)
    expected_start_time = models.DateTimeField(null=True, blank=True)
    next_scheduled_start_time = models.DateTimeField(null=True, blank=True)
    start_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True)
    total_run_time = models.FloatField(default=0.0, help_text="seconds spent RUNNING, over all attempts")
    estimated_start_time_delta = models.FloatField(
        default=0.0, help_text="seconds between the expected and the actual start"
    )
    # Retry settings the engine's retry rules read: {"retries": int, "retry_delay": number | [numbers],
    # "retry_jitter_factor": number | null}.
    empirical_policy = models.JSONField(default=dict, blank=True)

    class Meta:
        abstract = True

    @property
    def state(self) -> State | None:
        if self.state_type is None:
            return None
        return State(
            id=self.state_id,
            type=StateType(self.state_type),
            name=self.state_name,
            timestamp=self.state_timestamp,
            message=self.state_message,
            state_details=dict(self.state_details or {}),
            data=self.state_data,
        )

    def estimated_lateness(self) -> float:
        """Seconds late: measured at start, or growing while a run waits past its expected start."""
        if self.start_time is None and self.expected_start_time and self.state_type == StateType.SCHEDULED:
            return max(0.0, (timezone.now() - self.expected_start_time).total_seconds())
        return self.estimated_start_time_delta

    def __str__(self) -> str:
        return self.name


class FlowRun(RunBase):
    flow = models.ForeignKey("flows.Flow", on_delete=models.CASCADE, related_name="flow_runs")
    flow_version = models.CharField(max_length=200, null=True, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    parent_task_run = models.ForeignKey(
        "runs.TaskRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="subflow_runs"
    )
    deployment = models.ForeignKey(
        "deployments.Deployment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="flow_runs",
        db_column="deployment_id",
        # The composite index flow_run_deployment_created serves lookups by deployment.
        db_index=False,
    )
    # Created by the scheduler from one of the deployment's schedules (its idempotency key names the time).
    auto_scheduled = models.BooleanField(default=False)
    # Work queue references; plain values until those models exist.
    work_pool_name = models.CharField(max_length=200, null=True, blank=True)
    work_queue_name = models.CharField(max_length=200, null=True, blank=True)
    infrastructure_pid = models.CharField(max_length=200, null=True, blank=True)
    # The worker executing the run (with work_pool_name it names the Worker row whose heartbeat keeps it alive).
    worker_name = models.CharField(max_length=200, null=True, blank=True)
    # A run of a celery pool: when it was last sent to its pool's Celery queue (None: not yet, e.g. due beyond the
    # horizon or left by a paused pool); the celery_dispatch service sends the others (apps/work_pools/dispatch.py).
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="flow_run_unique_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["-created", "-id"], name="flow_run_created"),
            models.Index(fields=["flow", "-created", "-id"], name="flow_run_flow_created"),
            # Filters combined with the default newest-first order: the index serves both, no sort step.
            models.Index(fields=["state_type", "-created", "-id"], name="flow_run_state_type_created"),
            models.Index(fields=["state_name", "-created", "-id"], name="flow_run_state_name_created"),
            models.Index(fields=["state_type", "expected_start_time"], name="flow_run_state_type_start"),
            models.Index(fields=["state_name", "expected_start_time"], name="flow_run_state_name_start"),
            models.Index(fields=["state_name", "next_scheduled_start_time"], name="flow_run_state_name_next_start"),
            models.Index(fields=["deployment_id", "-created", "-id"], name="flow_run_deployment_created"),
            # The scheduler's "which runs exist ahead" read and a deployment's upcoming runs.
            models.Index(fields=["deployment_id", "expected_start_time"], name="flow_run_deployment_start"),
            models.Index(
                fields=["work_pool_name", "state_type", "expected_start_time"],
                name="flow_run_pool_state_start",
            ),
            # A worker's poll: the pool's Scheduled runs due by their next start (retries included).
            models.Index(
                fields=["work_pool_name", "state_type", "next_scheduled_start_time"],
                name="flow_run_pool_state_next_start",
            ),
            # The admin's and the UI's work pool filter in the default order.
            models.Index(fields=["work_pool_name", "-created", "-id"], name="flow_run_pool_created"),
            models.Index(fields=["expected_start_time"], name="flow_run_expected_start"),
            models.Index(fields=["name"], name="flow_run_name"),
        ]


class TaskRun(RunBase):
    flow_run = models.ForeignKey(FlowRun, null=True, blank=True, on_delete=models.CASCADE, related_name="task_runs")
    task_key = models.CharField(max_length=500)
    dynamic_key = models.CharField(max_length=200, default="0")
    task_version = models.CharField(max_length=200, null=True, blank=True)
    cache_key = models.CharField(max_length=500, null=True, blank=True)
    cache_expiration = models.DateTimeField(null=True, blank=True)
    # {"argument name": [{"input_type": "task_run", "id": "<uuid>"}, ...]}: the upstream edges.
    task_inputs = models.JSONField(default=dict, blank=True)
    # The flow run's run_count when this task run last ran: lets a retried flow re-run its tasks.
    flow_run_run_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["flow_run", "task_key", "dynamic_key"], name="task_run_unique_key_per_flow_run"
            ),
        ]
        indexes = [
            models.Index(fields=["flow_run", "created"], name="task_run_flow_run_created"),
            models.Index(fields=["-created", "-id"], name="task_run_created"),
            models.Index(fields=["state_type", "-created", "-id"], name="task_run_state_type_created"),
            models.Index(fields=["state_type", "expected_start_time"], name="task_run_state_type_start"),
            models.Index(fields=["state_name", "-created", "-id"], name="task_run_state_name_created"),
            models.Index(fields=["cache_key"], name="task_run_cache_key"),
        ]


class StateRecord(BaseModel):
    type = models.CharField(max_length=16, choices=STATE_TYPE_CHOICES)
    name = models.CharField(max_length=32)
    timestamp = models.DateTimeField()
    message = models.TextField(null=True, blank=True)
    state_details = models.JSONField(default=dict, blank=True)
    data = models.JSONField(null=True, blank=True)

    class Meta:
        abstract = True

    def as_state(self) -> State:
        return State(
            id=self.id,
            type=StateType(self.type),
            name=self.name,
            timestamp=self.timestamp,
            message=self.message,
            state_details=dict(self.state_details or {}),
            data=self.data,
        )

    def __str__(self) -> str:
        return f"{self.name} at {self.timestamp:%Y-%m-%d %H:%M:%S}"


class FlowRunState(StateRecord):
    flow_run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="states")

    class Meta:
        ordering = ["timestamp", "created"]
        indexes = [models.Index(fields=["flow_run", "timestamp"], name="flow_run_state_run_time")]


class TaskRunState(StateRecord):
    task_run = models.ForeignKey(TaskRun, on_delete=models.CASCADE, related_name="states")

    class Meta:
        ordering = ["timestamp", "created"]
        indexes = [models.Index(fields=["task_run", "timestamp"], name="task_run_state_run_time")]
