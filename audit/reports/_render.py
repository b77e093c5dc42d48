"""Rendering a built report as Markdown, self-contained HTML, or JSON, and writing the files.

HTML is one file: styles inline, charts as inline SVG, no scripts, fonts or images fetched.
Files are written atomically (temp file, then rename), so a half-written report never replaces
a good one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from audit.reports._model import Report
from retention.errors import InputError

__all__ = ["FORMATS", "render", "render_markdown", "render_html", "render_json", "write_report"]

FORMATS = ("md", "html", "json")
_TEMPLATES = Path(__file__).resolve().parent / "templates"


def _md_cell(value: object) -> str:
    """A Markdown table cell: pipes escaped, line breaks flattened."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip() or " "


def _md_text(value: object) -> str:
    """Paragraph text: neutralise characters that would start Markdown structure."""
    text = str(value).replace("\r", "")
    lines = []
    for line in text.split("\n"):
        stripped = line.lstrip()
        if stripped[:1] in ("#", ">", "|") or stripped[:2] in ("- ", "* ", "+ "):
            line = "\\" + stripped
        lines.append(line)
    return "\n".join(lines)


def _environment(autoescape: bool) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(_TEMPLATES)),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md_cell"] = _md_cell
    env.filters["md_text"] = _md_text
    env.filters["svg"] = lambda svg: Markup(svg)  # built by _svg with every label escaped
    return env


_HTML = _environment(autoescape=True)
_MD = _environment(autoescape=False)


def render_markdown(report: Report) -> str:
    text = _MD.get_template("report.md.j2").render(r=report)
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def render_html(report: Report) -> str:
    return _HTML.get_template("report.html.j2").render(r=report)


def render_json(report: Report) -> str:
    return json.dumps(report.as_json(), indent=2, ensure_ascii=False) + "\n"


def render(report: Report, fmt: str) -> str:
    """The report in one of :data:`FORMATS`."""
    renderers = {"md": render_markdown, "html": render_html, "json": render_json}
    try:
        return renderers[fmt](report)
    except KeyError:
        raise InputError(
            f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}"
        ) from None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_report(report: Report, out_dir: Path, formats: Iterable[str]) -> list[Path]:
    """Write ``OUT/KIND.md|html|json``; return the paths written."""
    formats = list(formats)
    for fmt in formats:
        if fmt not in FORMATS:
            raise InputError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create report directory '{out_dir}' ({exc.strerror})") from exc
    written = []
    for fmt in formats:
        path = out_dir / f"{report.kind}.{fmt}"
        try:
            _write_atomic(path, render(report, fmt))
        except OSError as exc:
            raise InputError(f"cannot write report '{path}' ({exc.strerror})") from exc
        written.append(path)
    return written
