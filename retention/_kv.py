"""The hvac boundary for a Vault/OpenBao KV v2 mount: read, check-and-set write, destroy, list.

Only what the shared key store (:mod:`retention.shared_keys`) needs. Every call goes through
:meth:`KvClient._call`, which turns hvac and requests errors into one line of ours naming what
to do; the token is never in a message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .transit import _first_error as _first
from .transit import server_errors

__all__ = ["KvLocation", "KvClient", "CasConflict"]


class CasConflict(Exception):
    """A check-and-set write lost: the entry's version is not the one given (internal)."""


@dataclass(frozen=True)
class KvLocation:
    """Where a shared key store's entries live: a KV v2 mount and a path prefix in it."""

    mount: str = "secret"
    path: str = "flowaudit"

    def where(self, address: str) -> str:
        return f"KV v2 mount '{self.mount}' at {address} (path '{self.path}')"


class KvClient:
    """KV v2 calls on one prefix; paths given to it are relative to the prefix."""

    def __init__(self, client: Any, address: str, location: KvLocation) -> None:
        self._kv = client.secrets.kv.v2
        self.address = address
        self.location = location

    @property
    def where(self) -> str:
        return self.location.where(self.address)

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        import hvac.exceptions as hx

        try:
            with server_errors(self.where, what):
                yield
        except hx.InvalidRequest as exc:
            if "check-and-set" in str(exc).lower():
                raise CasConflict() from None
            raise ConfigError(f"{self.where} refused {what}: {_first(exc)}") from None
        except hx.VaultError as exc:
            raise ConfigError(f"{self.where} failed {what}: {_first(exc)}") from None

    def _full(self, path: str) -> str:
        return f"{self.location.path}/{path}" if path else self.location.path

    def check_mount(self) -> None:
        """Fail with the command that enables the mount if it is missing or not KV v2."""
        import hvac.exceptions as hx

        with self._call("reading the mount's configuration"):
            try:
                self._kv.read_configuration(mount_point=self.location.mount)
            except hx.InvalidPath:
                raise ConfigError(
                    f"no KV v2 engine at mount '{self.location.mount}' on {self.address}; "
                    f"enable it with `bao secrets enable -path={self.location.mount} -version=2 "
                    "kv` or set shared_kv_mount in flowaudit.toml"
                ) from None

    def read(self, path: str) -> tuple[int, dict[str, Any]] | None:
        """(version, data) of an entry's latest version, or None when there is no entry."""
        import hvac.exceptions as hx

        with self._call("reading a key entry"):
            try:
                got = self._kv.read_secret_version(
                    path=self._full(path), mount_point=self.location.mount,
                    raise_on_deleted_version=True,
                )
            except hx.InvalidPath:
                return None
        body = got["data"]
        return int(body["metadata"]["version"]), dict(body.get("data") or {})

    def write(self, path: str, data: dict[str, Any], *, cas: int) -> int:
        """Write a new version if the entry is at version ``cas`` (0: absent); its version.

        Raises :class:`CasConflict` when another writer got there first.
        """
        with self._call("writing a key entry"):
            got = self._kv.create_or_update_secret(
                path=self._full(path), secret=data, cas=cas, mount_point=self.location.mount
            )
        return int(got["data"]["version"])

    def destroy_versions(self, path: str, versions: list[int]) -> None:
        """Remove these versions' data for good (the entry and its metadata stay)."""
        if not versions:
            return
        with self._call("destroying a key entry's versions"):
            self._kv.destroy_secret_versions(
                path=self._full(path), versions=versions, mount_point=self.location.mount
            )

    def list(self, path: str) -> list[str]:
        """Names under a folder (empty when there is none)."""
        import hvac.exceptions as hx

        with self._call("listing key entries"):
            try:
                got = self._kv.list_secrets(path=self._full(path), mount_point=self.location.mount)
            except hx.InvalidPath:
                return []
        return [str(k) for k in got["data"]["keys"]]
