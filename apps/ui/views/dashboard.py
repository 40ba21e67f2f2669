"""The dashboard (/ui/): runs by state over the last 24 hours, Late and Failed warnings, upcoming runs, pools."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from apps.ui import overview
from apps.ui.access import viewer_required
from apps.ui.page import render_page

CHART_WIDTH = 720
CHART_HEIGHT = 180
CHART_LEFT = 40  # room for the y axis labels
CHART_BOTTOM = 20  # room for the hour labels
BAR_GAP = 4


@dataclass
class Segment:
    x: float
    y: float
    width: float
    height: float
    state_type: str
    label: str


@dataclass
class Chart:
    """The stacked bar chart's geometry, drawn by the template as SVG."""

    width: int
    height: int
    segments: list[Segment]
    hour_labels: list[tuple[float, str]]
    maximum: int
    plot_top: int
    plot_bottom: int
    left: int
    legend: list[tuple[str, int]]


def hourly_chart(counts: overview.HourlyCounts) -> Chart:
    """Stacked bars, one per hour, one segment per state type with runs in that hour (bottom: Completed)."""
    hours = len(counts.hours)
    totals = [sum(values[index] for values in counts.counts.values()) for index in range(hours)]
    maximum = max(totals, default=0)
    plot_height = CHART_HEIGHT - CHART_BOTTOM - 10
    bar_slot = (CHART_WIDTH - CHART_LEFT) / hours
    segments = []
    for index, start in enumerate(counts.hours):
        base = float(CHART_HEIGHT - CHART_BOTTOM)
        for state_type in overview.CHART_STATE_TYPES:
            count = counts.counts[state_type.value][index]
            if not count:
                continue
            height = plot_height * count / maximum
            base -= height
            segments.append(
                Segment(
                    x=round(CHART_LEFT + index * bar_slot + BAR_GAP / 2, 1),
                    y=round(base, 1),
                    width=round(bar_slot - BAR_GAP, 1),
                    height=round(height, 1),
                    state_type=state_type.value,
                    label=f"{start:%H:00}-{(start.hour + 1) % 24:02d}:00 UTC: {count} {state_type.value.title()}",
                )
            )
    hour_labels = [
        (round(CHART_LEFT + index * bar_slot + bar_slot / 2, 1), f"{start:%H}h")
        for index, start in enumerate(counts.hours)
        if index % 3 == 0
    ]
    legend = [
        (state_type.value, sum(counts.counts[state_type.value]))
        for state_type in overview.CHART_STATE_TYPES
        if sum(counts.counts[state_type.value])
    ]
    return Chart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        segments=segments,
        hour_labels=hour_labels,
        maximum=maximum,
        plot_top=CHART_HEIGHT - CHART_BOTTOM - plot_height,
        plot_bottom=CHART_HEIGHT - CHART_BOTTOM,
        left=CHART_LEFT,
        legend=legend,
    )


@viewer_required
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    counts = overview.runs_by_hour(now=now)
    late, late_count = overview.late_runs()
    failed, failed_count = overview.failed_runs_recent(now=now)
    context = {
        "chart": hourly_chart(counts),
        "total_runs": counts.total,
        "late_runs": late,
        "late_count": late_count,
        "failed_runs": failed,
        "failed_count": failed_count,
        "count_cap": overview.COUNT_CAP,
        "upcoming_runs": overview.upcoming_runs(now=now),
        "pools": overview.work_pools_health(now=now),
        "now": now,
    }
    return render_page(request, "ui/dashboard/index.html", title="Dashboard", section="dashboard", context=context)
