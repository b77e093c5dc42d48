"""Direct SQL on the store and the audit log: the independent side of the reconciliation tests.

Nothing here imports ``audit.reports``: every expected number is recomputed from the tables
with plain SQL (dialect-specific JSON access where the audit log's details are needed).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from retention.models import UTCDateTime

FRAME_S = 0.03


def q(conn: Connection, sql: str, **params: Any) -> Any:
    """One scalar; datetimes bound through the store's UTC type (naive UTC on SQLite)."""
    stmt = text(sql)
    binds = [
        bindparam(k, type_=UTCDateTime()) for k, v in params.items() if isinstance(v, datetime)
    ]
    if binds:
        stmt = stmt.bindparams(*binds)
    return conn.execute(stmt, params).scalar()


def rows(conn: Connection, sql: str, **params: Any) -> list[Any]:
    stmt = text(sql)
    binds = [
        bindparam(k, type_=UTCDateTime()) for k, v in params.items() if isinstance(v, datetime)
    ]
    if binds:
        stmt = stmt.bindparams(*binds)
    return list(conn.execute(stmt, params).all())


def details(value: Any) -> dict[str, Any]:
    """The audit log's JSON ``details`` as the driver returns it (text on SQLite)."""
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def json_field(conn: Connection, column: str, key: str) -> str:
    """SQL for ``column ->> key`` on either backend."""
    if conn.dialect.name == "postgresql":
        return f"({column} ->> '{key}')"
    return f"json_extract({column}, '$.{key}')"


def truthy(conn: Connection, column: str) -> str:
    return column if conn.dialect.name == "postgresql" else f"{column} = 1"


def category(conn: Connection, table: str, event_id: str, now: datetime) -> dict[str, Any]:
    """What a data category holds, straight from its table."""
    out = {
        "records": q(conn, f"SELECT count(*) FROM {table} WHERE event_id = :e", e=event_id),
        "ciphertext_bytes": q(
            conn,
            f"SELECT coalesce(sum(length(ciphertext)), 0) FROM {table} WHERE event_id = :e",
            e=event_id,
        ),
        "readable_now": q(
            conn,
            f"SELECT count(*) FROM {table} r JOIN retention_buckets b ON b.id = r.bucket_id "
            "WHERE r.event_id = :e AND b.state = 'ACTIVE' "
            "AND (r.expires_at IS NULL OR r.expires_at > :now)",
            e=event_id,
            now=now,
        ),
        "expired_awaiting_purge": q(
            conn,
            f"SELECT count(*) FROM {table} WHERE event_id = :e AND expires_at <= :now",
            e=event_id,
            now=now,
        ),
        "kept_indefinitely": q(
            conn,
            f"SELECT count(*) FROM {table} WHERE event_id = :e AND expires_at IS NULL",
            e=event_id,
        ),
        "subjects": q(
            conn,
            f"SELECT count(DISTINCT subject_pseudonym) FROM {table} WHERE event_id = :e",
            e=event_id,
        ),
    }
    cat = "raw_audio" if table == "raw_segments" else "metadata"
    out["buckets"] = {
        state: q(
            conn,
            "SELECT count(*) FROM retention_buckets WHERE event_id = :e AND category = :c "
            "AND state = :s",
            e=event_id,
            c=cat,
            s=state,
        )
        for state in ("ACTIVE", "SHREDDED", "DELETED")
    }
    if table == "raw_segments":
        out["audio_seconds"] = (
            q(
                conn,
                "SELECT coalesce(sum(duration_ms), 0) FROM raw_segments WHERE event_id = :e",
                e=event_id,
            )
            / 1000
        )
        out["speech_seconds"] = (
            q(
                conn,
                "SELECT coalesce(sum(speech_frames), 0) FROM raw_segments WHERE event_id = :e",
                e=event_id,
            )
            * FRAME_S
        )
    return out


def population(conn: Connection, event_id: str) -> dict[str, Any]:
    status = {
        s: q(
            conn,
            "SELECT count(*) FROM consents WHERE event_id = :e AND status = :s",
            e=event_id,
            s=s,
        )
        for s in ("opted_in", "opted_out", "withdrawn")
    }
    with_data = (
        "SELECT subject_pseudonym AS p FROM raw_segments WHERE event_id = :e "
        "AND subject_pseudonym IS NOT NULL UNION SELECT subject_pseudonym AS p FROM "
        "metadata_records WHERE event_id = :e AND subject_pseudonym IS NOT NULL"
    )
    return {
        "wristbands": q(conn, "SELECT count(*) FROM consents WHERE event_id = :e", e=event_id),
        "consent_by_status": status,
        "staff_wristbands": q(
            conn,
            "SELECT count(*) FROM consents c JOIN subjects s ON s.id = c.subject_id "
            f"WHERE c.event_id = :e AND {truthy(conn, 's.is_staff')}",
            e=event_id,
        ),
        "subjects_with_data": q(conn, f"SELECT count(*) FROM ({with_data}) d", e=event_id),
        "staff_with_data": q(
            conn,
            f"SELECT count(*) FROM ({with_data}) d JOIN subjects s ON s.pseudonym = d.p "
            f"WHERE {truthy(conn, 's.is_staff')}",
            e=event_id,
        ),
    }


def puts_per_bucket(conn: Connection, event_id: str) -> dict[str, int]:
    """Records written per bucket, counted from the audit log."""
    bucket = json_field(conn, "details", "bucket")
    event = json_field(conn, "details", "event")
    return {
        str(b): int(n)
        for b, n in rows(
            conn,
            f"SELECT {bucket}, count(*) FROM audit_log WHERE action IN ('raw.put', "
            f"'metadata.put') AND {event} = :e GROUP BY {bucket}",
            e=event_id,
        )
    }


def summaries(conn: Connection, event_id: str) -> list[dict[str, Any]]:
    return [
        details(s)
        for (s,) in rows(conn, "SELECT summary FROM event_runs WHERE event_id = :e", e=event_id)
    ]
