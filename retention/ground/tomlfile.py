"""Reading a TOML file a person wrote: one error naming the file, never a parser traceback."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ..errors import FlowauditError, InputError

__all__ = ["read_toml", "parse_toml"]


def parse_toml(
    data: bytes, *, what: str, error: type[FlowauditError] = InputError
) -> dict[str, Any]:
    """Decode UTF-8 TOML; ``what`` names the document in the error (``policy 'x.toml'``)."""
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what}: not valid TOML ({exc})") from None


def read_toml(
    path: Path, *, what: str, error: type[FlowauditError] = InputError
) -> dict[str, Any]:
    """Read and decode ``path``; a missing or unreadable file is one ``error`` line too."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} does not exist") from None
    except OSError as exc:
        raise error(f"{what} cannot be read ({exc.strerror})") from None
    return parse_toml(data, what=what, error=error)
