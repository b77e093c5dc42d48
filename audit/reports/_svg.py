"""Hand-drawn inline SVG charts: no plotting library, no fonts or scripts to fetch.

The SVG is embedded in the HTML report as is (no ``xmlns`` needed inside HTML, so the report
contains no URL at all). Charts scale with the page (``viewBox`` + ``width=100%``) and print in
colour or grey: series differ by dash pattern as well as by colour.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import escape

__all__ = ["Series", "hbar_chart", "time_chart", "milestones_chart", "PALETTE", "epoch"]

PALETTE = ["#1f5f8b", "#b03a2e", "#1e8449", "#b9770e", "#6c3483", "#566573"]
_DASHES = ["", "6 3", "2 3", "8 3 2 3"]
_FONT = 'font-family="inherit"'


def epoch(at: datetime) -> float:
    return at.astimezone(UTC).timestamp()


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _e(text: object) -> str:
    """Escaped for XML, with the characters XML 1.0 cannot carry removed."""
    return escape(_NOT_XML.sub("", str(text)), quote=True)


@dataclass(frozen=True)
class Series:
    """One line of a :func:`time_chart`; x values are epoch seconds (or plain numbers)."""

    name: str
    points: list[tuple[float, float]]
    color: str = ""
    dashed: bool = False
    fill: bool = False
    step: bool = True
    dots: bool = False  # draw markers only (events), no line


def _nice_step(span: float, count: int) -> float:
    if span <= 0:
        return 1.0
    raw = span / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= mult * power:
            return mult * power
    return 10 * power


def _nice_ticks(top: float, count: int = 5) -> list[float]:
    step = _nice_step(top, count)
    ticks, value = [], 0.0
    while value <= top + step * 1e-9:
        ticks.append(value)
        value += step
    if ticks[-1] < top:
        ticks.append(ticks[-1] + step)
    return ticks


_TIME_STEPS = [
    60,
    300,
    600,
    900,
    1800,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    7 * 86400,
    14 * 86400,
    30 * 86400,
    90 * 86400,
    365 * 86400,
]


def _time_ticks(lo: float, hi: float, count: int = 7) -> list[float]:
    span = max(hi - lo, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= count), _TIME_STEPS[-1])
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) // step) + 1)]


def _time_label(x: float, span: float) -> str:
    at = datetime.fromtimestamp(x, UTC)
    if span <= 2 * 86400:
        return at.strftime("%d %b %H:%M")
    return at.strftime("%Y-%m-%d")


def _fmt_axis(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e4:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{_e(title)}" class="chart" {_FONT} font-size="12">',
        f"<title>{_e(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]


def hbar_chart(
    rows: Sequence[tuple[str, float]],
    *,
    title: str,
    value_label: Callable[[float], str] = lambda v: f"{v:g}",
    colors: Sequence[str] | None = None,
    width: int = 720,
    label_width: int = 220,
) -> str:
    """Horizontal bars with the exact value printed at the end of each bar."""
    bar_h, gap, top = 22, 10, 30
    height = top + len(rows) * (bar_h + gap) + 10
    plot_w = width - label_width - 170
    biggest = max((v for _, v in rows), default=0.0) or 1.0
    out = _open(width, height, title)
    out.append(f'<text x="8" y="18" font-weight="bold">{_e(title)}</text>')
    for i, (label, value) in enumerate(rows):
        y = top + i * (bar_h + gap)
        color = (colors[i % len(colors)] if colors else PALETTE[0]) or PALETTE[0]
        w = 0.0 if value <= 0 else max(1.5, plot_w * value / biggest)
        out.append(
            f'<text x="{label_width - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">'
            f"{_e(label)}</text>"
        )
        out.append(
            f'<rect x="{label_width}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>'
        )
        out.append(
            f'<text x="{label_width + w + 6:.1f}" y="{y + bar_h * 0.7:.1f}">'
            f"{_e(value_label(value))}</text>"
        )
    out.append(
        f'<line x1="{label_width}" y1="{top - 4}" x2="{label_width}" '
        f'y2="{height - 8}" stroke="#333"/>'
    )
    out.append("</svg>")
    return "\n".join(out)


def time_chart(
    series: Sequence[Series],
    *,
    title: str,
    y_label: str,
    markers: Sequence[tuple[float, str]] = (),
    hline: tuple[float, str] | None = None,
    x_is_time: bool = True,
    width: int = 720,
    height: int = 300,
    y_max: float | None = None,
) -> str:
    """Lines (stepped or straight) over time, with vertical markers and an optional threshold."""
    left, right, top, bottom = 64, 16, 34, 62
    xs = [x for s in series for x, _ in s.points] + [x for x, _ in markers]
    ys = [y for s in series for _, y in s.points] + ([hline[0]] if hline else [])
    lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 60.0
    pad = (hi - lo) * 0.02
    lo, hi = lo - pad, hi + pad
    y_top = y_max if y_max is not None else max(ys + [1.0])
    yticks = _nice_ticks(y_top)
    y_top = yticks[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + plot_w * (x - lo) / (hi - lo)

    def py(y: float) -> float:
        return top + plot_h * (1 - y / y_top)

    out = _open(width, height, title)
    out.append(f'<text x="8" y="18" font-weight="bold">{_e(title)}</text>')
    for tick in yticks:
        out.append(
            f'<line x1="{left}" y1="{py(tick):.1f}" x2="{width - right}" y2="{py(tick):.1f}" '
            'stroke="#ddd"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{py(tick) + 4:.1f}" text-anchor="end">'
            f"{_e(_fmt_axis(tick))}</text>"
        )
    out.append(
        f'<text x="14" y="{top + plot_h / 2:.1f}" transform="rotate(-90 14 {top + plot_h / 2:.1f})"'
        f' text-anchor="middle">{_e(y_label)}</text>'
    )
    xticks = _time_ticks(lo, hi) if x_is_time else _nice_ticks(hi)
    for tick in xticks:
        if not lo <= tick <= hi:
            continue
        label = _time_label(tick, hi - lo) if x_is_time else _fmt_axis(tick)
        out.append(
            f'<line x1="{px(tick):.1f}" y1="{top + plot_h}" x2="{px(tick):.1f}" '
            f'y2="{top + plot_h + 4}" stroke="#333"/>'
        )
        out.append(
            f'<text x="{px(tick):.1f}" y="{top + plot_h + 17}" text-anchor="middle">'
            f"{_e(label)}</text>"
        )
    out.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>'
    )
    if hline is not None:
        y = py(hline[0])
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            'stroke="#b03a2e" stroke-dasharray="4 3"/>'
        )
        out.append(
            f'<text x="{width - right - 4}" y="{y - 5:.1f}" text-anchor="end" fill="#b03a2e">'
            f"{_e(hline[1])}</text>"
        )
    for i, (x, label) in enumerate(sorted(markers)):
        out.append(
            f'<line x1="{px(x):.1f}" y1="{top}" x2="{px(x):.1f}" y2="{top + plot_h}" '
            'stroke="#555" stroke-dasharray="2 3"/>'
        )
        right_half = px(x) > left + plot_w * 0.7
        anchor, tx = ("end", px(x) - 3) if right_half else ("start", px(x) + 3)
        out.append(
            f'<text x="{tx:.1f}" y="{top + 12 + 13 * (i % 3)}" fill="#333" font-size="11" '
            f'text-anchor="{anchor}">{_e(label)}</text>'
        )
    for i, s in enumerate(series):
        if not s.points:
            continue
        color = s.color or PALETTE[i % len(PALETTE)]
        dash = "5 4" if s.dashed else _DASHES[i % len(_DASHES)]
        if s.dots:
            for x, y in s.points:
                out.append(
                    f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{color}" '
                    'stroke="#fff"/>'
                )
            continue
        coords: list[tuple[float, float]] = []
        for j, (x, y) in enumerate(s.points):
            if s.step and j:
                coords.append((px(x), coords[-1][1]))
            coords.append((px(x), py(y)))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        if s.fill:
            base = py(0)
            out.append(
                f'<polygon points="{coords[0][0]:.1f},{base:.1f} {path} '
                f'{coords[-1][0]:.1f},{base:.1f}" fill="{color}" fill-opacity="0.15"/>'
            )
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash_attr}/>'
        )
        if len(s.points) == 1:
            out.append(
                f'<circle cx="{coords[0][0]:.1f}" cy="{coords[0][1]:.1f}" r="3" fill="{color}"/>'
            )
    # legend
    lx, ly = left, height - 22
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        dash = "5 4" if s.dashed else _DASHES[i % len(_DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        if s.dots:
            out.append(f'<circle cx="{lx + 11}" cy="{ly}" r="4" fill="{color}"/>')
        else:
            out.append(
                f'<line x1="{lx}" y1="{ly}" x2="{lx + 22}" y2="{ly}" stroke="{color}" '
                f'stroke-width="2"{dash_attr}/>'
            )
        out.append(f'<text x="{lx + 27}" y="{ly + 4}">{_e(s.name)}</text>')
        lx += 40 + 7 * len(s.name)
    out.append("</svg>")
    return "\n".join(out)


def milestones_chart(
    milestones: Sequence[tuple[date, str, bool]],
    *,
    marker: tuple[date, str],
    title: str,
    width: int = 720,
) -> str:
    """Dates on a line (filled dot = in force at ``marker``), with the evaluation date marked."""
    dates = [d for d, _, _ in milestones] + [marker[0]]
    lo = min(dates).toordinal() - 60
    hi = max(dates).toordinal() + 60
    left, right = 30, 30
    row_h, top = 24, 40
    axis_y = top + 6
    height = top + 24 + row_h * len(milestones) + 26

    def px(d: date) -> float:
        return left + (width - left - right) * (d.toordinal() - lo) / (hi - lo)

    out = _open(width, height, title)
    out.append(f'<text x="8" y="18" font-weight="bold">{_e(title)}</text>')
    out.append(
        f'<line x1="{left}" y1="{axis_y}" x2="{width - right}" y2="{axis_y}" stroke="#333"/>'
    )
    for year in range(date.fromordinal(lo).year + 1, date.fromordinal(hi).year + 1):
        x = px(date(year, 1, 1))
        out.append(
            f'<line x1="{x:.1f}" y1="{axis_y - 4}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#333"/>'
        )
        out.append(f'<text x="{x:.1f}" y="{axis_y - 8}" text-anchor="middle">{year}</text>')
    mx = px(marker[0])
    out.append(
        f'<line x1="{mx:.1f}" y1="{axis_y - 4}" x2="{mx:.1f}" y2="{height - 22}" '
        'stroke="#b03a2e" stroke-width="2" stroke-dasharray="4 3"/>'
    )
    anchor = "end" if mx > width * 0.55 else "start"
    out.append(
        f'<text x="{mx + (-4 if anchor == "end" else 4):.1f}" y="{height - 8}" fill="#b03a2e" '
        f'text-anchor="{anchor}">{_e(marker[1])}</text>'
    )
    for i, (when, label, active) in enumerate(sorted(milestones)):
        x = px(when)
        y = top + 30 + i * row_h
        fill = PALETTE[2] if active else "#ffffff"
        out.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{y - 4}" stroke="#bbb"/>')
        out.append(
            f'<circle cx="{x:.1f}" cy="{y - 4}" r="5" fill="{fill}" stroke="{PALETTE[2]}" '
            'stroke-width="2"/>'
        )
        text = f"{when.isoformat()}  {label}"
        anchor, tx = ("end", x - 10) if x > width * 0.55 else ("start", x + 10)
        out.append(f'<text x="{tx:.1f}" y="{y}" text-anchor="{anchor}">{_e(text)}</text>')
    out.append("</svg>")
    return "\n".join(out)
