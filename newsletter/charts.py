"""Small server-side charts as inline SVG: no JavaScript or stylesheet to load, so the admin
dashboard works under a strict Content-Security-Policy and renders in any browser.

Colours and dash patterns are SVG attributes, not `style=`: the policy refuses inline styles.
Each line has its own dash pattern as well as its own colour, so the legend reads without
telling colours apart. The legend is HTML under the chart, so it wraps and stays readable on a
phone where the drawing itself is scaled down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 640, 250
LEFT, RIGHT, TOP, BOTTOM = 60, 26, 14, 36  # room for the axis labels
FONT = 17  # in viewBox units: about 9 px on a phone, 17 px at the chart's widest (640 px)
MAX_Y_INTERVALS = 4  # gridlines above zero, at most


@dataclass(frozen=True)
class Pen:
    colour: str
    dashes: str  # an SVG stroke-dasharray; "" is a solid line


# One pen per series, in the order the series are given.
PENS = [
    Pen("#2563eb", ""),
    Pen("#059669", "9 4"),
    Pen("#7c3aed", "3 3"),
    Pen("#d97706", "12 4 3 4"),
    Pen("#dc2626", "2 6"),
]


def y_ticks(peak: int, *, intervals: int = MAX_Y_INTERVALS) -> list[int]:
    """Round y-axis ticks from 0 up to at least `peak`: a step of 1, 2 or 5 x 10^n, the smallest
    that needs no more than `intervals` steps. Counts are whole, so the step is at least 1."""
    if peak <= 0:
        return [0, 1]
    magnitude = 1
    while True:
        for multiple in (1, 2, 5):
            step = multiple * magnitude
            if step * intervals >= peak:
                top = -(-peak // step) * step  # peak rounded up to a whole step
                return list(range(0, top + step, step))
        magnitude *= 10


def x_tick_every(days: int) -> int:
    """Days between date labels: a week for a month, two weeks for a quarter, so the labels
    never crowd each other even when the chart is phone-wide."""
    if days <= 31:
        return 7
    if days <= 62:
        return 14
    return 15


def _legend(series: dict[str, list[int]], *, levels: bool) -> SafeString:
    # A count per day sums to a total; a level (subscribers at the end of each day) does not:
    # its legend says where it stands on the last day.
    def figure(values: list[int]) -> str:
        return f"{values[-1] if values else 0:,} now" if levels else f"{sum(values):,} in all"

    items = format_html_join(
        "",
        '<li><svg width="28" height="12" aria-hidden="true" focusable="false">'
        '<line x1="1" x2="27" y1="6" y2="6" stroke="{}" stroke-width="3"{}/></svg>'
        '{} <span class="pb-legend-total">({})</span></li>',
        (
            (
                pen.colour,
                format_html(' stroke-dasharray="{}"', pen.dashes) if pen.dashes else "",
                name,
                figure(values),
            )
            for pen, (name, values) in zip(PENS, series.items(), strict=False)
        ),
    )
    return format_html('<ul class="pb-legend">{}</ul>', items)


def line_chart(
    *, title: str, days: list[date], series: dict[str, list[int]], levels: bool = False
) -> SafeString:
    """One line per series over the days: a y axis from 0 with round, labelled gridlines, date
    labels at regular gridlines ending on the last day, and a legend with each series' total
    (or, for `levels` such as a number of subscribers, its value on the last day).

    Every value comes from our own counts, and each label is escaped by format_html anyway.
    """
    if len(series) > len(PENS):
        raise ValueError(f"a chart draws at most {len(PENS)} series, not {len(series)}")
    ticks = y_ticks(max((max(values, default=0) for values in series.values()), default=0))
    top = ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(days) - 1, 1)

    def x(i: int) -> float:
        return round(LEFT + i * step, 1)

    def y(value: int) -> float:
        return round(TOP + plot_h - value / top * plot_h, 1)

    def _y_label(value: int) -> tuple:
        return LEFT - 6, y(value) + FONT // 3, FONT, f"{value:,}"

    def _x_label(i: int) -> tuple:
        # The last label is anchored inwards so it is not cut off at the edge.
        anchor = "end" if i == len(days) - 1 and i else "middle"
        return x(i), HEIGHT - 10, anchor, FONT, days[i].strftime("%-d %b")

    y_grid = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-width="1"/>'
        '<text x="{}" y="{}" text-anchor="end" font-size="{}" fill="currentColor">{}</text>',
        (
            (LEFT, WIDTH - RIGHT, y(v), y(v), "#888" if v == 0 else "#ddd", *_y_label(v))
            for v in ticks
        ),
    )
    # Date gridlines counted back from the last day, so today always has its label.
    last = len(days) - 1
    x_ticks = list(range(last, -1, -x_tick_every(len(days))))[::-1] if days else []
    x_grid = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#eee" stroke-width="1"/>'
        '<text x="{}" y="{}" text-anchor="{}" font-size="{}" fill="currentColor">{}</text>',
        ((x(i), x(i), TOP, TOP + plot_h, *_x_label(i)) for i in x_ticks),
    )
    lines = format_html_join(
        "",
        '<polyline fill="none" stroke="{}" stroke-width="2.5"{} points="{}"><title>{}</title>'
        "</polyline>",
        (
            (
                pen.colour,
                format_html(' stroke-dasharray="{}"', pen.dashes) if pen.dashes else "",
                " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(values)),
                f"{name}: {values[-1] if values else 0} on the last day",
            )
            for pen, (name, values) in zip(PENS, series.items(), strict=False)
        ),
    )
    svg = format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="100%" role="img" '
        'aria-label="{}" class="pb-chart"><title>{}</title>{}{}{}</svg>',
        WIDTH,
        HEIGHT,
        title,
        title,
        x_grid,
        y_grid,
        lines,
    )
    return format_html(
        '<figure class="pb-chart-figure">{}{}</figure>', svg, _legend(series, levels=levels)
    )
