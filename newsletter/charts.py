"""Small server-side charts as inline SVG: no JavaScript or stylesheet to load, so the admin
dashboard works under a strict Content-Security-Policy and renders in any browser."""

from __future__ import annotations

from datetime import date

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 16, 28  # room for the axis labels
COLOURS = ["#2563eb", "#d97706", "#059669"]


def _nice_max(value: int) -> int:
    """The smallest 1/2/5 x 10^n at or above value, so the axis reads in round numbers."""
    if value <= 0:
        return 1
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def line_chart(*, title: str, days: list[date], series: dict[str, list[int]]) -> SafeString:
    """One line per series over the days, with a y axis from 0 and a legend.

    Every value comes from our own counts, and each label is escaped by format_html anyway.
    """
    top = _nice_max(max((max(values, default=0) for values in series.values()), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(days) - 1, 1)

    def x(i: int) -> float:
        return round(LEFT + i * step, 1)

    def y(value: int) -> float:
        return round(TOP + plot_h - value / top * plot_h, 1)

    grid = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#ccc" stroke-width="1"/>'
        '<text x="{}" y="{}" text-anchor="end" font-size="11" fill="currentColor">{}</text>',
        (
            (LEFT, WIDTH - RIGHT, y(v), y(v), LEFT - 6, y(v) + 4, v)
            for v in (0, top // 2 if top > 1 else 0, top)
        ),
    )
    # A date label at the start, the middle and the end keeps the axis readable at 90 days.
    ticks = sorted({0, (len(days) - 1) // 2, len(days) - 1}) if days else []
    # The end labels are anchored inwards so they are not cut off at the edges.
    anchors = {0: "start", len(days) - 1: "end"}
    labels = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="{}" font-size="11" fill="currentColor">{}</text>',
        ((x(i), HEIGHT - 8, anchors.get(i, "middle"), days[i].strftime("%-d %b")) for i in ticks),
    )
    lines = format_html_join(
        "",
        '<polyline fill="none" stroke="{}" stroke-width="2" points="{}"><title>{}</title>'
        "</polyline>",
        (
            (
                COLOURS[n % len(COLOURS)],
                " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(values)),
                f"{name}: {values[-1] if values else 0} on the last day",
            )
            for n, (name, values) in enumerate(series.items())
        ),
    )
    legend = format_html_join(
        "",
        '<rect x="{}" y="2" width="10" height="10" fill="{}"/>'
        '<text x="{}" y="11" font-size="11" fill="currentColor">{}</text>',
        (
            (LEFT + n * 140, COLOURS[n % len(COLOURS)], LEFT + n * 140 + 14, name)
            for n, name in enumerate(series)
        ),
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="100%" role="img" '
        'aria-label="{}" class="pb-chart"><title>{}</title>{}{}{}{}</svg>',
        WIDTH,
        HEIGHT,
        title,
        title,
        grid,
        labels,
        lines,
        legend,
    )
