"""The hand-drawn SVG charts: well-formed, escaped, finite, whatever the data."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from audit.reports._svg import Series, hbar_chart, milestones_chart, time_chart

_NUM = re.compile(r'\s(?:x|y|x1|x2|y1|y2|width|height|cx|cy)="([^"]*)"')


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == "svg"
    assert root.find("title") is not None
    return root


def _finite(svg: str) -> bool:
    return all(math.isfinite(float(v)) for v in _NUM.findall(svg) if not v.endswith("%"))


labels = st.text(min_size=0, max_size=30)
printable = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=30,
)
values = st.floats(min_value=0, max_value=1e9, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(printable, values), min_size=0, max_size=8), labels)
def test_hbar_chart_is_well_formed(rows: list[tuple[str, float]], title: str) -> None:
    svg = hbar_chart(rows, title=title)
    root = _parse(svg)
    assert _finite(svg)
    texts = [t.text or "" for t in root.iter("text")]
    for label, _ in rows:
        assert label in texts  # escaped on the way in, intact after parsing


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.floats(min_value=1.7e9, max_value=1.9e9, allow_nan=False),
                st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
            ),
            max_size=30,
        ),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_time_chart_is_well_formed(lines: list[list[tuple[float, float]]], fill: bool) -> None:
    series = [
        Series(f"s<{i}>&", sorted(points), fill=fill, dots=i == 3) for i, points in enumerate(lines)
    ]
    svg = time_chart(series, title="t & <t>", y_label="n", markers=[(1.8e9, "now")])
    _parse(svg)
    assert _finite(svg)
    assert "<t>" not in svg.replace("<title>", "").replace("<text", "")


@settings(max_examples=40, deadline=None)
@given(labels, labels)
def test_any_label_gives_well_formed_xml(label: str, title: str) -> None:
    """Control characters XML cannot carry are dropped rather than breaking the document."""
    _parse(hbar_chart([(label, 1.0)], title=title))
    _parse(time_chart([Series(label, [(1.8e9, 1.0)])], title=title, y_label=label))


def test_time_chart_with_no_points_still_draws() -> None:
    svg = time_chart([Series("empty", [])], title="nothing", y_label="n")
    _parse(svg)
    assert _finite(svg)


def test_milestones_mark_what_is_in_force() -> None:
    svg = milestones_chart(
        [(date(2025, 2, 2), "prohibitions", True), (date(2026, 8, 2), "Art 50", False)],
        marker=(date(2026, 1, 1), "as of 2026-01-01"),
        title="dates",
    )
    root = _parse(svg)
    fills = [c.get("fill") for c in root.iter("circle")]
    assert fills.count("#ffffff") == 1 and len(fills) == 2
    assert "as of 2026-01-01" in [t.text for t in root.iter("text")]


def test_no_urls_in_charts() -> None:
    svg = hbar_chart([("a", 1.0)], title="x") + time_chart(
        [Series("a", [(1.8e9, 1)])], title="y", y_label="z"
    )
    assert "http" not in svg and "xmlns" not in svg and "href" not in svg
