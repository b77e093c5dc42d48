"""Steps the shared-key-store tests share: move a home into KV, and make a joining home.

A joining home is what another machine holds: a copy of ``flowaudit.toml`` and ``signing.key``
in its own directory, nothing else — no key file, no shared filesystem.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import hvac

from flowaudit.config import Settings, resolve_settings

from ._helpers import cli
from .conftest import Bao


def to_shared(settings: Settings, bao: Bao, key: str, now: datetime, kv_path: str) -> Settings:
    """`flowaudit keys use-shared` on a home; its settings afterwards."""
    result = cli("keys", "use-shared", "--address", bao.address, "--key", key,
                 "--kv-path", kv_path, "--home", str(settings.home), "--now", now.isoformat())
    assert result.exit_code == 0, result.output
    return resolve_settings(settings.home, settings.db_url)


def joining_home(source: Settings, directory: Path) -> Settings:
    """Another machine's home: the config and signing key copied, no key files."""
    directory.mkdir(parents=True)
    for name in ("flowaudit.toml", "signing.key"):
        shutil.copy2(source.home / name, directory / name)
    config = directory / "flowaudit.toml"
    if "database_url" not in config.read_text():  # a SQLite home: point at the one database
        config.write_text(f'database_url = "{source.db_url}"\n' + config.read_text())
    return resolve_settings(directory)


def kv_entries(bao: Bao, kv_path: str) -> dict[str, dict[str, object]]:
    """Every entry under a store's path, as the server holds it (latest version)."""
    client = hvac.Client(url=bao.address, token=bao.token).secrets.kv.v2
    out: dict[str, dict[str, object]] = {}
    folders = [""]
    while folders:
        folder = folders.pop()
        base = f"{kv_path}/{folder}".rstrip("/")
        for name in client.list_secrets(path=base, mount_point="secret")["data"]["keys"]:
            if name.endswith("/"):
                folders.append(folder + name)
                continue
            got = client.read_secret_version(path=f"{base}/{name}", mount_point="secret",
                                             raise_on_deleted_version=True)
            out[f"{folder}{name}"] = got["data"]["data"]
    return out


ROOT = Path(__file__).resolve().parents[2]


def child(*args: str) -> subprocess.Popen[str]:
    """A long-running process of its own (tests/keys/_shared_child.py), driven over stdin."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.keys._shared_child", *args], cwd=ROOT, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip


def ask(process: subprocess.Popen[str], line: str | None = None) -> str:
    """Send a command line (if any) and read the child's one-line answer."""
    assert process.stdin is not None and process.stdout is not None
    if line is not None:
        process.stdin.write(line + "\n")
        process.stdin.flush()
    return process.stdout.readline().strip()


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()
