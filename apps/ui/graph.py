"""The run page's dependency graph, drawn by the server as SVG: task runs are boxes placed in columns by their
dependency depth (a task run sits one column right of its deepest upstream), upstream edges are curves from the
upstream's right side to the downstream's left side, and a task run that ran a subflow links to that run.

The drawing is capped: a run with thousands of task runs draws its first `MAX_NODES` (in creation order, so
every drawn task run's upstreams that were created earlier are drawn too) and says so under the graph.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from apps.runs.models import FlowRun, TaskRun

MAX_NODES = 300
NODE_WIDTH, NODE_HEIGHT = 170, 26
COLUMN_GAP, ROW_GAP, MARGIN = 56, 10, 8
MAX_LABEL = 22


@dataclass
class Node:
    id: str
    name: str
    state_type: str | None
    state_name: str | None
    upstream: list[str] = field(default_factory=list)
    href: str | None = None  # a subflow's run page
    depth: int = 0
    row: int = 0

    @property
    def x(self) -> int:
        return MARGIN + self.depth * (NODE_WIDTH + COLUMN_GAP)

    @property
    def y(self) -> int:
        return MARGIN + self.row * (NODE_HEIGHT + ROW_GAP)


@dataclass
class Graph:
    nodes: list[Node]
    edges: list[tuple[str, str]]
    truncated: bool

    @property
    def width(self) -> int:
        depth = max((node.depth for node in self.nodes), default=0)
        return 2 * MARGIN + (depth + 1) * NODE_WIDTH + depth * COLUMN_GAP

    @property
    def height(self) -> int:
        rows = max((node.row for node in self.nodes), default=0) + 1
        return 2 * MARGIN + rows * NODE_HEIGHT + (rows - 1) * ROW_GAP


def _upstream_ids(task_inputs: dict | None) -> list[str]:
    found: list[str] = []
    for inputs in (task_inputs or {}).values():
        for item in inputs or []:
            if isinstance(item, dict) and item.get("input_type") == "task_run" and item.get("id"):
                found.append(str(item["id"]))
    return list(dict.fromkeys(found))


def flow_run_graph(*, run_id: uuid.UUID, max_nodes: int = MAX_NODES) -> Graph:
    """The run's first `max_nodes` task runs with their upstream edges, and its subflow runs; two queries."""
    rows = list(
        TaskRun.objects.filter(flow_run_id=run_id)
        .order_by("created", "id")
        .values_list("id", "name", "state_type", "state_name", "task_inputs")[: max_nodes + 1]
    )
    truncated = len(rows) > max_nodes
    nodes = [
        Node(id=str(pk), name=name, state_type=state_type, state_name=state_name, upstream=_upstream_ids(inputs))
        for pk, name, state_type, state_name, inputs in rows[:max_nodes]
    ]
    by_id = {node.id: node for node in nodes}
    subflows = FlowRun.objects.filter(parent_task_run__flow_run_id=run_id).values_list(
        "id", "name", "state_type", "state_name", "parent_task_run_id"
    )[:max_nodes]
    for pk, name, state_type, state_name, parent_id in subflows:
        href = reverse("ui:flow-run-detail", args=[pk])
        parent = by_id.get(str(parent_id))
        if parent is not None:
            # The task run that ran the subflow stands for it: its box links to the subflow's page.
            parent.href, parent.name = href, name
            parent.state_type, parent.state_name = state_type, state_name
        elif not truncated:
            node = Node(id=str(pk), name=name, state_type=state_type, state_name=state_name, href=href)
            nodes.append(node)
            by_id[node.id] = node
    edges = [(upstream, node.id) for node in nodes for upstream in node.upstream if upstream in by_id]
    _lay_out(nodes, by_id)
    return Graph(nodes=nodes, edges=edges, truncated=truncated)


def _lay_out(nodes: list[Node], by_id: dict[str, Node]) -> None:
    """Depth = longest chain of drawn upstreams; rows in creation order within each column."""
    depth: dict[str, int] = {}

    def depth_of(node_id: str, seen: frozenset[str]) -> int:
        if node_id in depth:
            return depth[node_id]
        if node_id in seen:  # a cycle cannot be recorded by a client that resolves futures, but never loop
            return 0
        node = by_id[node_id]
        ups = [u for u in node.upstream if u in by_id]
        value = 1 + max((depth_of(u, seen | {node_id}) for u in ups), default=-1)
        depth[node_id] = value
        return value

    rows_used: dict[int, int] = {}
    for node in nodes:
        # Upstreams are nearly always created first, so this recursion is shallow in practice.
        node.depth = depth_of(node.id, frozenset())
        node.row = rows_used.get(node.depth, 0)
        rows_used[node.depth] = node.row + 1


def _label(name: str) -> str:
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "…"


def render_svg(graph: Graph) -> SafeString:
    """The SVG markup (escaped by format_html); the page's stylesheet colours nodes by state and edges."""
    by_id = {node.id: node for node in graph.nodes}
    edges = format_html_join(
        "",
        '<path class="edge" data-from="{}" data-to="{}" d="M{} {} C{} {}, {} {}, {} {}"/>',
        (
            (
                source,
                target,
                by_id[source].x + NODE_WIDTH,
                by_id[source].y + NODE_HEIGHT // 2,
                by_id[source].x + NODE_WIDTH + COLUMN_GAP // 2,
                by_id[source].y + NODE_HEIGHT // 2,
                by_id[target].x - COLUMN_GAP // 2,
                by_id[target].y + NODE_HEIGHT // 2,
                by_id[target].x,
                by_id[target].y + NODE_HEIGHT // 2,
            )
            for source, target in graph.edges
        ),
    )
    nodes = mark_safe("".join(_node_markup(node) for node in graph.nodes))  # noqa: S308 (built by format_html)
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="run-graph-svg" width="{}" height="{}" viewBox="0 0 {} {}" '
        'role="img" aria-label="task dependency graph">{}{}</svg>',
        graph.width,
        graph.height,
        graph.width,
        graph.height,
        edges,
        nodes,
    )


def _node_markup(node: Node) -> str:
    box = format_html(
        '<g class="node state-{}{}" data-id="{}" transform="translate({} {})"><title>{} ({})</title>'
        '<rect width="{}" height="{}" rx="4"/><text x="8" y="{}">{}</text></g>',
        node.state_type or "NONE",
        " subflow" if node.href else "",
        node.id,
        node.x,
        node.y,
        node.name,
        node.state_name or "no state",
        NODE_WIDTH,
        NODE_HEIGHT,
        NODE_HEIGHT // 2 + 4,
        _label(node.name),
    )
    if node.href:
        return format_html('<a href="{}">{}</a>', node.href, box)
    return str(box)
