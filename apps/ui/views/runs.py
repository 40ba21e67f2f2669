"""The flow run pages: the runs list with its filters and keyset pages, one run's page (state, timeline,
parameters, result, task runs, graph, logs) with its Cancel, Retry and Resume buttons, and the HTML fragments
the pages' scripts reload when a websocket message or a reconnect says a part changed (docs/ui.md).

Reads are a few indexed queries per page whatever the table sizes; the buttons act through the engine and the
services (the same calls as the API's set_state, create_flow_run and resume), never on the rows directly.
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from html import escape
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db import connection
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_POST

from apps.core.errors import OrchestratorError
from apps.deployments.models import Deployment
from apps.deployments.services import deployment_create_flow_run
from apps.flows.models import Flow
from apps.logs.models import Log
from apps.orchestration import engine
from apps.runs import services as run_services
from apps.runs.models import FlowRun, FlowRunState, TaskRun
from apps.runs.selectors import filter_by_tags
from apps.ui import graph as run_graph
from apps.ui.access import can_operate, operator_required, viewer_required
from apps.ui.page import render_page
from apps.ui.paging import FORWARD, InvalidCursor, Page, encode_cursor, keyset_page, merge_rows
from apps.ui.run_input import RunInputForm, input_schema
from apps.work_pools.waiting import flow_run_waiting, task_runs_waiting_brief
from orchestrator.states import NAMED_STATES, TERMINAL_TYPES, Cancelling, StateType

RUNS_PER_PAGE = 50
TASK_RUNS_PER_PAGE = 100
LOG_LINES_PER_PAGE = 200
# A reconnecting page asks for the lines it missed; a longer gap reloads the page instead.
MAX_MISSED_LOG_LINES = 2000
# The filter form's flow and deployment choices (the filters themselves take any id).
MAX_CHOICES = 500
LOG_LEVELS = [(0, "All levels"), (10, "DEBUG+"), (20, "INFO+"), (30, "WARNING+"), (40, "ERROR+"), (50, "CRITICAL")]
# A name search on SQLite (no trigram index there) reads runs newest first until it has a page; a rare name would
# read them all. Without a time range it looks through the newest NAME_SEARCH_WINDOW runs only, and says so.
NAME_SEARCH_WINDOW = 100_000
RECENT = {"1h": datetime.timedelta(hours=1), "24h": datetime.timedelta(days=1), "7d": datetime.timedelta(days=7)}

# The columns the runs table shows: the list never loads parameters, results or state details.
LIST_FIELDS = (
    "id",
    "name",
    "flow__name",
    "deployment__name",
    "state_type",
    "state_name",
    "start_time",
    "end_time",
    "expected_start_time",
    "total_run_time",
    "tags",
    "work_pool_name",
    "created",
)
TASK_RUN_FIELDS = (
    "id",
    "name",
    "flow_run_id",
    "tags",
    "state_type",
    "state_name",
    "start_time",
    "end_time",
    "total_run_time",
    "run_count",
    "created",
)


# --------------------------------------------------------------------------------------------------------------
# Shared pieces


def _duration(run: FlowRun | TaskRun, now: datetime.datetime) -> str:
    """Time spent running: the engine's total for a finished run, the clock for one still running."""
    if run.start_time is None:
        return ""
    if run.end_time is None:
        if run.state_type != StateType.RUNNING:  # paused, or waiting to run again: the time it ran so far
            return format_seconds(run.total_run_time) if run.total_run_time else ""
        seconds = (now - run.start_time).total_seconds()
    else:
        seconds = run.total_run_time or (run.end_time - run.start_time).total_seconds()
    return format_seconds(seconds)


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _annotate(runs: list[Any]) -> list[Any]:
    now = timezone.now()
    for run in runs:
        run.duration_text = _duration(run, now)
    return runs


def _cursor_error(request: HttpRequest, exc: InvalidCursor) -> None:
    messages.error(request, str(exc))


# --------------------------------------------------------------------------------------------------------------
# The runs list


class StatesField(forms.MultipleChoiceField):
    """Several `state` values; the empty one (the form's "any name" choice) is ignored."""

    def to_python(self, value: Any) -> list[str]:
        return [item for item in super().to_python(value) if item]


class FlowRunFilterForm(forms.Form):
    """The list's filters, read from the query string; each is served by an index (docs/ui.md)."""

    # State types (RUNNING) and state names (Late) alike; a run in any of them is shown.
    state = StatesField(
        choices=[*((t.value, t.value.title()) for t in StateType), *((n, n) for n in NAMED_STATES)], required=False
    )
    flow = forms.UUIDField(required=False)
    deployment = forms.UUIDField(required=False)
    work_pool = forms.CharField(max_length=200, required=False)
    tag = forms.CharField(max_length=200, required=False, help_text="runs with every one of these (comma-separated)")
    name = forms.CharField(max_length=200, required=False)
    recent = forms.ChoiceField(choices=[("", "any time"), *((key, f"last {key}") for key in RECENT)], required=False)
    since = forms.DateTimeField(required=False, help_text="created at or after (ISO 8601, UTC)")
    until = forms.DateTimeField(required=False, help_text="created before (ISO 8601, UTC)")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since >= until:
            self.add_error("until", "must be later than since")
        return cleaned

    # Set by `filter` when a name search was bounded to the newest runs (SQLite): the oldest creation time searched.
    name_search_since: datetime.datetime | None = None

    def filter(self, queryset: QuerySet[FlowRun]) -> list[QuerySet[FlowRun]]:
        """The filtered runs, as one queryset per state asked for (their union is the list; see keyset_page)."""
        data = self.cleaned_data
        queryset = self._filter_others(queryset, data)
        if data.get("name") and not (data.get("recent") or data.get("since") or data.get("until")):
            self.name_search_since = _name_search_window_start()
            if self.name_search_since is not None:
                queryset = queryset.filter(created__gte=self.name_search_since)
        branches = []
        for value in dict.fromkeys(data.get("state") or []):
            field = "state_type" if value in StateType.__members__ else "state_name"
            branches.append(queryset.filter(**{field: value}))
        return branches or [queryset]

    @staticmethod
    def _filter_others(queryset: QuerySet[FlowRun], data: dict[str, Any]) -> QuerySet[FlowRun]:
        if data.get("flow"):
            queryset = queryset.filter(flow_id=data["flow"])
        if data.get("deployment"):
            queryset = queryset.filter(deployment_id=data["deployment"])
        if data.get("work_pool"):
            queryset = queryset.filter(work_pool_name=data["work_pool"])
        tags = [tag.strip() for tag in (data.get("tag") or "").split(",") if tag.strip()]
        if tags:
            queryset = filter_by_tags(queryset, tags)
        if data.get("name"):
            queryset = queryset.filter(name__icontains=data["name"])
        if data.get("recent"):
            queryset = queryset.filter(created__gte=timezone.now() - RECENT[data["recent"]])
        if data.get("since"):
            queryset = queryset.filter(created__gte=data["since"])
        if data.get("until"):
            queryset = queryset.filter(created__lt=data["until"])
        return queryset

    def error_text(self) -> str:
        parts = []
        for name, errors in self.errors.items():
            label = "filters" if name == "__all__" else f"“{name}”"
            parts.append(f"{label}: {' '.join(errors)}")
        return "Bad filter " + "; ".join(parts)


def _name_search_window_start() -> datetime.datetime | None:
    """On SQLite, the creation time of the NAME_SEARCH_WINDOW-th newest run (one read of the creation index), or
    None when there are fewer runs or the database has a trigram index for names (PostgreSQL)."""
    if connection.vendor != "sqlite":
        return None
    window = FlowRun.objects.order_by("-created").values_list("created", flat=True)
    return next(iter(window[NAME_SEARCH_WINDOW - 1 : NAME_SEARCH_WINDOW]), None)


def run_rows_html(runs: list[FlowRun]) -> SafeString:
    """The runs table's rows (string formatting, as `log_rows_html` and for the same reason), for the page and
    for the live list's requests alike."""
    rows = []
    for run in runs:
        if run.start_time:
            start = f"{run.start_time:%Y-%m-%d %H:%M:%S}"
        elif run.expected_start_time:
            start = f'<span class="quiet">scheduled {run.expected_start_time:%Y-%m-%d %H:%M:%S}</span>'
        else:
            start = ""
        tags = " ".join(f'<span class="tag">{escape(str(tag))}</span>' for tag in run.tags or [])
        rows.append(
            f'<tr data-testid="flow-run-row" data-id="{run.pk}">'
            f'<td><a href="/ui/flow-runs/{run.pk}/">{escape(run.name)}</a></td>'
            f"<td>{escape(run.flow.name)}</td><td>{escape(run.deployment.name) if run.deployment else ''}</td>"
            f'<td><span class="state state-{escape(run.state_type or "NONE")}" data-role="state">'
            f"{escape(run.state_name or '')}</span></td>"
            f'<td data-role="start">{start}</td><td data-role="duration">{run.duration_text}</td>'
            f"<td>{tags}</td><td>{escape(run.work_pool_name or '')}</td></tr>"
        )
    return mark_safe("".join(rows))  # noqa: S308 (every text is escaped)


def _runs_queryset() -> QuerySet[FlowRun]:
    return FlowRun.objects.select_related("flow", "deployment").only(*LIST_FIELDS)


def _filtered_runs(request: HttpRequest) -> tuple[FlowRunFilterForm, list[QuerySet[FlowRun]] | None]:
    form = FlowRunFilterForm(request.GET)
    if not form.is_valid():
        return form, None
    return form, form.filter(_runs_queryset())


@viewer_required
def flow_run_list(request: HttpRequest) -> HttpResponse:
    form, queryset = _filtered_runs(request)
    page, status = Page(), 200
    if queryset is None:
        messages.error(request, form.error_text())
        status = 400
    else:
        if form.name_search_since is not None:
            messages.info(
                request,
                f"The name search looked through the newest {NAME_SEARCH_WINDOW:,} runs (created since "
                f"{form.name_search_since:%Y-%m-%d %H:%M} UTC); give a time range to search older runs.",
            )
        try:
            page = keyset_page(
                queryset,
                time_field="created",
                descending=True,
                limit=RUNS_PER_PAGE,
                cursor=request.GET.get("cursor"),
            )
        except InvalidCursor as exc:
            _cursor_error(request, exc)
            status = 400
    context = {
        "form": form,
        "runs": page.rows,
        "rows": run_rows_html(_annotate(page.rows)),
        "page": page,
        "first_page": not request.GET.get("cursor"),
        "filter_query": _query_without(request, "cursor"),
        "flows": Flow.objects.order_by("name").values_list("id", "name")[:MAX_CHOICES],
        "deployments": Deployment.objects.order_by("flow__name", "name").values_list("id", "flow__name", "name")[
            :MAX_CHOICES
        ],
        "state_types": [t.value for t in StateType],
        "state_names": list(NAMED_STATES),
        "selected_states": form.data.getlist("state") if hasattr(form.data, "getlist") else [],
        "recent_choices": list(RECENT),
    }
    response = render_page(request, "ui/flow_runs/list.html", title="Flow runs", section="flow_runs", context=context)
    response.status_code = status
    return response


@viewer_required
def flow_run_rows(request: HttpRequest) -> HttpResponse:
    """Table rows for the live list: the runs named by `ids` that match the page's filters (new runs the
    websocket announced), or the first page again (after a reconnect)."""
    form, queryset = _filtered_runs(request)
    if queryset is None:
        return HttpResponse(form.error_text(), status=400, content_type="text/plain")
    ids = []
    for value in request.GET.get("ids", "").split(","):
        try:
            ids.append(uuid.UUID(value.strip()))
        except ValueError:
            continue
    if request.GET.get("ids") is not None:
        reads = [list(branch.filter(pk__in=ids[:RUNS_PER_PAGE])) for branch in queryset]
        runs = merge_rows(reads, time_field="created", descending=True)
    else:
        runs = keyset_page(queryset, time_field="created", descending=True, limit=RUNS_PER_PAGE).rows
    return HttpResponse(run_rows_html(_annotate(runs)))


# --------------------------------------------------------------------------------------------------------------
# One run


def _get_run(run_id: uuid.UUID) -> FlowRun:
    run = FlowRun.objects.select_related("flow", "deployment", "parent_task_run__flow_run").filter(pk=run_id).first()
    if run is None:
        raise Http404(f"no flow run with id {run_id}")
    return run


def _summary_context(request: HttpRequest, run: FlowRun, resume_form: RunInputForm | None = None) -> dict[str, Any]:
    """The summary part; its buttons only for users who may act (a Viewer sees the run, not the buttons)."""
    now = timezone.now()
    operate = can_operate(request)
    schema = input_schema(run.state_details) if run.state_type == StateType.PAUSED and operate else None
    if schema is not None and resume_form is None:
        resume_form = RunInputForm(schema)
    return {
        "run": run,
        "duration_text": _duration(run, now),
        "states": list(FlowRunState.objects.filter(flow_run_id=run.id).order_by("timestamp", "created")),
        "can_cancel": operate and run.state_type not in TERMINAL_TYPES and run.state_type != StateType.CANCELLING,
        "can_retry": operate and run.deployment_id is not None and run.state_type in TERMINAL_TYPES,
        "can_resume": operate and run.state_type == StateType.PAUSED,
        "resume_form": resume_form,
        "result": _result_text(run),
    }


def _result_text(run: FlowRun) -> str | None:
    """The result as the API shows it: the Completed state's data (a persisted result's reference)."""
    if run.state_type != StateType.COMPLETED or run.state_data is None:
        return None
    return json.dumps(run.state_data, indent=2, sort_keys=True, default=str)


def _task_runs_page(run: FlowRun, cursor: str | None) -> Page:
    queryset = TaskRun.objects.filter(flow_run_id=run.id).only(*TASK_RUN_FIELDS)
    page = keyset_page(queryset, time_field="created", descending=False, limit=TASK_RUNS_PER_PAGE, cursor=cursor)
    briefs = task_runs_waiting_brief(runs=page.rows)
    for task_run in _annotate(page.rows):
        task_run.retries = max(task_run.run_count - 1, 0)
        task_run.waiting_brief = briefs.get(str(task_run.pk))
    return page


def _waiting_brief_html(task_run: TaskRun) -> str:
    brief = getattr(task_run, "waiting_brief", None)
    return f' <span class="ui-waiting-brief" data-role="waiting">waiting: {escape(brief)}</span>' if brief else ""


def task_rows_html(task_runs: list[TaskRun]) -> SafeString:
    """The task runs table's rows (string formatting, as `log_rows_html` and for the same reason)."""
    rows = []
    for task_run in task_runs:
        start = f"{task_run.start_time:%Y-%m-%d %H:%M:%S}" if task_run.start_time else ""
        rows.append(
            f'<tr data-id="{task_run.pk}" data-created="{task_run.created.isoformat()}">'
            f"<td>{escape(task_run.name)}</td>"
            f'<td><span class="state state-{escape(task_run.state_type or "NONE")}" data-role="state">'
            f"{escape(task_run.state_name or '')}</span>{_waiting_brief_html(task_run)}</td>"
            f'<td data-role="start">{start}</td><td data-role="duration">{task_run.duration_text}</td>'
            f'<td data-role="retries">{task_run.retries}</td></tr>'
        )
    return mark_safe("".join(rows))  # noqa: S308 (every text is escaped)


def _log_level(request: HttpRequest) -> int:
    raw = request.GET.get("log_level", "")
    return int(raw) if raw in {str(level) for level, _ in LOG_LEVELS} else 0


def _logs_queryset(run: FlowRun, level: int) -> QuerySet[Log]:
    queryset = (
        Log.objects.filter(flow_run_id=run.id)
        .select_related("task_run")
        .only("id", "level", "message", "timestamp", "task_run_id", "task_run__name")
    )
    return queryset.filter(level__gte=level) if level else queryset


def _logs_page(run: FlowRun, level: int, cursor: str | None) -> Page:
    """The logs' tail by default (newest lines at the bottom, live lines appended), earlier pages by cursor."""
    page = keyset_page(
        _logs_queryset(run, level),
        time_field="timestamp",
        descending=False,
        limit=LOG_LINES_PER_PAGE,
        cursor=cursor,
        from_end=not cursor,
    )
    return page


def log_rows_html(lines: list[Log]) -> SafeString:
    """The log table's rows. Built with string formatting rather than a template loop: a page shows hundreds of
    lines, and the template engine's per-variable lookups cost more than the page's queries. Each row carries
    its cursor: a reconnecting page asks for the lines after its last one."""
    rows = []
    for line in lines:
        level = escape(logging.getLevelName(line.level))
        source = escape(line.task_run.name) if line.task_run_id and line.task_run else "flow"
        cursor = encode_cursor(FORWARD, line.timestamp, line.pk)
        shown = f"{line.timestamp:%Y-%m-%d %H:%M:%S.%f}"[:23]
        rows.append(
            f'<tr data-id="{line.pk}" data-cursor="{cursor}" class="log-{level}">'
            f'<td class="ui-nowrap"><time datetime="{line.timestamp.isoformat()}">{shown}</time></td>'
            f'<td>{level}</td><td>{source}</td><td class="ui-log-message">{escape(line.message)}</td></tr>'
        )
    return mark_safe("".join(rows))  # noqa: S308 (every text is escaped)


def _query_without(request: HttpRequest, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


def _run_page(request: HttpRequest, run: FlowRun, *, resume_form: RunInputForm | None = None, status: int = 200):
    level = _log_level(request)
    try:
        task_runs = _task_runs_page(run, request.GET.get("task_cursor"))
    except InvalidCursor as exc:
        _cursor_error(request, exc)
        task_runs = _task_runs_page(run, None)
    try:
        logs = _logs_page(run, level, request.GET.get("log_cursor"))
    except InvalidCursor as exc:
        _cursor_error(request, exc)
        logs = _logs_page(run, level, None)
    graph = run_graph.flow_run_graph(run_id=run.id)
    subflows = [node for node in graph.nodes if node.href]
    context = {
        **_summary_context(request, run, resume_form),
        "task_runs": task_runs,
        "task_rows": task_rows_html(task_runs.rows),
        "logs": logs,
        "log_level": level,
        "log_levels": LOG_LEVELS,
        "live_logs": logs.is_last,
        "log_rows": log_rows_html(logs.rows),
        "live_task_runs": task_runs.is_last,
        "graph": graph,
        "graph_svg": run_graph.render_svg(graph),
        "graph_limit": run_graph.MAX_NODES,
        "subflows": subflows,
        "waiting": flow_run_waiting(run=run),
        "waiting_refresh_ms": int(settings.ORCHESTRATOR_UI_WAITING_REFRESH_SECONDS * 1000),
        "parameters_text": json.dumps(run.parameters, indent=2, sort_keys=True, default=str),
        "task_query": _query_without(request, "task_cursor"),
        "log_query": _query_without(request, "log_cursor"),
    }
    title = f"Flow run {run.name} ({run.flow.name})"
    response = render_page(request, "ui/flow_runs/detail.html", title=title, section="flow_runs", context=context)
    response.status_code = status
    return response


@viewer_required
def flow_run_detail(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    return _run_page(request, _get_run(run_id))


@viewer_required
def flow_run_part(request: HttpRequest, run_id: uuid.UUID, part: str) -> HttpResponse:
    """One part of the run page, rendered by the same template as the page: the scripts reload a part when a
    message says it changed, and every part after a reconnect, so nothing the socket missed stays missing."""
    run = _get_run(run_id)
    if part == "summary":
        return render(request, "ui/flow_runs/_summary.html", _summary_context(request, run))
    if part == "task-runs":
        try:
            page = _task_runs_page(run, request.GET.get("task_cursor"))
        except InvalidCursor as exc:
            return HttpResponse(str(exc), status=400, content_type="text/plain")
        return render(
            request, "ui/flow_runs/_task_runs.html", {"task_runs": page, "task_rows": task_rows_html(page.rows)}
        )
    if part == "waiting":
        return render(request, "ui/flow_runs/_waiting.html", {"waiting": flow_run_waiting(run=run)})
    if part == "graph":
        graph = run_graph.flow_run_graph(run_id=run.id)
        return render(
            request,
            "ui/flow_runs/_graph.html",
            {"graph": graph, "graph_svg": run_graph.render_svg(graph), "graph_limit": run_graph.MAX_NODES},
        )
    if part == "logs":
        # The lines after the page's last one (`after` is that line's cursor), in time order.
        level = _log_level(request)
        try:
            page = keyset_page(
                _logs_queryset(run, level),
                time_field="timestamp",
                descending=False,
                limit=MAX_MISSED_LOG_LINES,
                cursor=request.GET.get("after"),
            )
        except InvalidCursor as exc:
            return HttpResponse(str(exc), status=400, content_type="text/plain")
        return HttpResponse(log_rows_html(page.rows))
    raise Http404(f"the run page has no part {part!r}")


# --------------------------------------------------------------------------------------------------------------
# The buttons: each is a POST (CSRF-checked) that acts through the engine or a service and reports the outcome.


@require_POST
@operator_required
def flow_run_cancel(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Propose Cancelling, as `POST /api/flow_runs/<id>/set_state/` does: a run nothing executes yet is
    Cancelled at once; a running one is Cancelling until its worker stops its process."""
    run = _get_run(run_id)
    result = engine.propose_state(
        kind=engine.FLOW_RUN, run_id=run.id, state=Cancelling(message=f"Cancelled from the UI by {request.user}")
    )
    state = result.state
    if state is not None and state.type == StateType.CANCELLED:
        messages.success(request, f"Flow run {run.name} is cancelled.")
    elif state is not None and state.type == StateType.CANCELLING and result.accepted:
        messages.success(request, f"Flow run {run.name} is cancelling: its worker stops its process.")
    else:
        messages.error(request, f"Flow run {run.name} cannot be cancelled: {result.reason or result.status.value}")
    return redirect("ui:flow-run-detail", run_id=run.id)


@require_POST
@operator_required
def flow_run_retry(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """A new run of the same deployment with the same parameters, as `POST /api/deployments/<id>/create_flow_run/`
    creates it."""
    run = _get_run(run_id)
    if run.deployment is None:
        messages.error(request, f"Flow run {run.name} cannot be retried: it is not a run of a deployment.")
        return redirect("ui:flow-run-detail", run_id=run.id)
    try:
        new_run, _ = deployment_create_flow_run(deployment=run.deployment, parameters=run.parameters, tags=run.tags)
    except OrchestratorError as exc:
        where = f" ({exc.field})" if exc.field else ""
        messages.error(request, f"Flow run {run.name} cannot be retried: {exc.message}{where}")
        return redirect("ui:flow-run-detail", run_id=run.id)
    messages.success(request, f"Created flow run {new_run.name}, a retry of {run.name}.")
    return redirect("ui:flow-run-detail", run_id=new_run.id)


@require_POST
@operator_required
def flow_run_resume(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Resume a paused run through `apps.runs.services.flow_run_resume` (the API's resume); when the pause asked
    for typed input, the form is validated first and shown again with its field errors."""
    run = _get_run(run_id)
    if run.state_type != StateType.PAUSED:
        messages.error(request, f"Flow run {run.name} cannot be resumed: it is {run.state_name}, not paused.")
        return redirect("ui:flow-run-detail", run_id=run.id)
    run_input = None
    schema = input_schema(run.state_details)
    if schema is not None:
        form = RunInputForm(schema, request.POST)
        if not form.is_valid():
            messages.error(request, "The input is not valid: see the fields below.")
            return _run_page(request, run, resume_form=form, status=400)
        run_input = form.run_input
    try:
        result = run_services.flow_run_resume(run=run, run_input=run_input)
    except OrchestratorError as exc:
        messages.error(request, f"Flow run {run.name} cannot be resumed: {exc.message}")
        return redirect("ui:flow-run-detail", run_id=run.id)
    if result.accepted:
        messages.success(request, f"Flow run {run.name} is resumed: {result.state.name if result.state else ''}.")
    else:
        messages.error(request, f"Flow run {run.name} was not resumed: {result.reason or result.status.value}")
    return redirect("ui:flow-run-detail", run_id=run.id)
