"""Key lifecycle: no resurrected key, and a wrapping key no older than the rotation interval.

A shred is only as final as the key store that forgets it. ``key-store-holds-destroyed-keys``
holds the whole shred ledger (every ``bucket.shred`` and ``subject.key_destroyed`` entry)
against the key store: a key the log says was destroyed but the store still holds came back
from an older copy, restored without ``flowaudit keys restore`` (which replays the ledger).
``key-rotation-overdue`` reads the last retirement of the wrapping key from the log (a KEK
rotation, a Transit rotation with ``--trim``): until the next one, a pre-shred copy of the key
store can restore shredded keys outside flowaudit; the configured ``key_rotation_interval``
is the bound the GDPR report promises.
"""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._registry import ERROR, WARNING, CheckContext, rule, sample
from retention.ledger import check_key_store, describe
from retention.shred_bound import rotation_interval, shred_bound

__all__ = ["key_store_holds_destroyed_keys", "key_rotation_overdue"]


@rule(
    "key-store-holds-destroyed-keys",
    title="The key store holds keys the audit log says were destroyed",
    severity=ERROR,
    legal_ref="GDPR Art 5(1)(e), Art 17(1)",
)
def key_store_holds_destroyed_keys(ctx: CheckContext) -> Iterator[tuple]:
    found = check_key_store(ctx.runtime.engine, ctx.runtime.keys, after_seq=0)
    if found:
        yield (
            f"{len(found)} keys the audit log records as destroyed are back in the key store "
            f"(restored from an older copy without replaying the ledger), first {describe(found)}"
            "; run `flowaudit keys replay`",
            {
                "count": len(found),
                "bucket_ids": sample(sorted(i for k, i in found if k == "buckets")),
                "subjects": sum(1 for k, _i in found if k == "subjects"),
                "ledger_entries": sample(sorted(set(found.values()))),
            },
        )


@rule(
    "key-rotation-overdue",
    title="The wrapping key is older than the configured rotation interval",
    severity=WARNING,
    legal_ref="GDPR Art 5(1)(e), Art 32(1)",
)
def key_rotation_overdue(ctx: CheckContext) -> Iterator[tuple]:
    interval = rotation_interval(getattr(ctx.runtime.settings, "key_rotation_interval", None))
    if interval is None:
        return
    provider = str(getattr(ctx.runtime.keys, "provider_name", "file"))
    with ctx.session() as session:
        bound = shred_bound(session, provider, interval, ctx.now)
    if bound["overdue"]:
        yield (
            f"the next key rotation was due {bound['next_rotation_due']} "
            f"(key_rotation_interval {bound['rotation_interval']}); "
            f"{bound['shreds_under_current_key']} shreds stay reversible from an old key-store "
            "copy until `flowaudit keys rotate`"
            + (" --trim" if provider != "file" else ""),
            {key: bound[key] for key in ("provider", "rotation_interval", "last_retirement",
                                         "next_rotation_due", "shreds_under_current_key")},
        )
