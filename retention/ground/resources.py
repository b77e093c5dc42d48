"""Data shipped inside the installed packages, as real file-system paths.

The shipped policies (``policies``), the alembic environment (``migrations``) and the demo
event (``pipeline/demo_event/``) are package data, so an installed wheel finds them through
:mod:`importlib.resources` wherever it lives, never through paths relative to a checkout.
Their readers need real paths: alembic opens ``script_location`` on disk, and an event file's
relative paths (catalogue, artist files) resolve against its folder. :func:`package_path`
therefore returns a :class:`~pathlib.Path`: the resource itself when the package sits on the
file system (any pip install, editable or not), else a copy that :func:`importlib.resources.as_file`
extracts once per process and removes at exit (a zip import; directories need Python 3.12+).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
from importlib.resources import as_file, files
from pathlib import Path

__all__ = ["package_path"]

_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


@functools.cache
def package_path(anchor: str, *parts: str) -> Path:
    """The real path of ``parts`` inside the importable package ``anchor`` (its folder if none).

    Cached: the answer cannot change within a process, and an extracted copy is made once.
    """
    resource = files(anchor)
    for part in parts:
        resource = resource / part
    if isinstance(resource, Path):
        return resource
    return _extracted.enter_context(as_file(resource))
