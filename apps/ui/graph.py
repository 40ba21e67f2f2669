"""The run page's dependency graph, drawn by the server as SVG: task runs are boxes placed in columns by their
dependency depth (a task run sits one column right of its deepest upstream), upstream edges are curves from the
upstream's right side to the downstream's left side, and a task run that ran a subflow links to that run.

The drawing is capped: a run with thousands of task runs draws its first `MAX_NODES` (in creation order, so
every drawn task run's upstreams that were created earlier are drawn too) and says so under the graph.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from html import escape

from django.urls import reverse
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
    """The run's first `max_nodes` task runs with their upstream edges, the subflow runs they ran; two queries."""
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
    # By the drawn task runs' ids (the parent_task_run index), not by a join to every run's parent.
    subflows = FlowRun.objects.filter(parent_task_run_id__in=list(by_id)).values_list(
        "id", "name", "state_type", "state_name", "parent_task_run_id"
    )
    for pk, name, state_type, state_name, parent_id in subflows:
        # The task run that ran the subflow stands for it: its box links to the subflow's page.
        parent = by_id[str(parent_id)]
        parent.href, parent.name = reverse("ui:flow-run-detail", args=[pk]), name
        parent.state_type, parent.state_name = state_type, state_name
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
    """The SVG markup; the page's stylesheet colours nodes by state and draws edges. Built with plain string
    formatting (numbers need no escaping, names are escaped once): format_html per element cost more than the
    queries of a 300-node graph."""
    by_id = {node.id: node for node in graph.nodes}
    half = NODE_HEIGHT // 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="run-graph-svg" width="{graph.width}" '
        f'height="{graph.height}" viewBox="0 0 {graph.width} {graph.height}" role="img" '
        f'aria-label="task dependency graph">'
    ]
    for source_id, target_id in graph.edges:
        source, target = by_id[source_id], by_id[target_id]
        x1, y1, x2, y2 = source.x + NODE_WIDTH, source.y + half, target.x, target.y + half
        bend = COLUMN_GAP // 2
        parts.append(
            f'<path class="edge" data-from="{source.id}" data-to="{target.id}" '
            f'd="M{x1} {y1} C{x1 + bend} {y1}, {x2 - bend} {y2}, {x2} {y2}"/>'
        )
    for node in graph.nodes:
        parts.append(_node_markup(node))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every value is a number, a UUID or escaped)


def _node_markup(node: Node) -> str:
    name = escape(node.name)
    box = (
        f'<g class="node state-{escape(node.state_type or "NONE")}{" subflow" if node.href else ""}" '
        f'data-id="{node.id}" transform="translate({node.x} {node.y})">'
        f"<title>{name} ({escape(node.state_name or 'no state')})</title>"
        f'<rect width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="4"/>'
        f'<text x="8" y="{NODE_HEIGHT // 2 + 4}">{escape(_label(node.name))}</text></g>'
    )
    if node.href:
        return f'<a href="{escape(node.href)}">{box}</a>'
    return box
