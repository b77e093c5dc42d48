"""RFC 9162 §2.1 Merkle tree hashing, inclusion and consistency proofs — pure functions.

A leaf hashes as ``SHA-256(0x00 ‖ data)``, an interior node as ``SHA-256(0x01 ‖ left ‖ right)``
(the prefixes keep a leaf from passing for a node), and the empty tree as ``SHA-256("")``.
A tree of ``n`` leaves splits at the largest power of two below ``n``.

Proofs are *generated* from a getter of complete-subtree hashes ``subtree(level, index)`` — the
hash of leaves ``[index·2^level, (index+1)·2^level)`` — so a stored tree answers one in
O(log n) reads: every hash a proof holds is a complete subtree or a fold of the complete
subtrees on the tree's right edge. :func:`inclusion_plan` / :func:`consistency_plan` name those
subtrees without reading anything, so a database can fetch them all in one query.
*Verification* follows the RFC 9162 §2.1.3.2 and §2.1.4.2 algorithms step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Subtree",
    "leaf_hash",
    "node_hash",
    "range_subtrees",
    "fold",
    "inclusion_plan",
    "consistency_plan",
    "inclusion_proof",
    "consistency_proof",
    "root_from_subtrees",
    "verify_inclusion",
    "verify_consistency",
    "root_from_inclusion",
    "Frontier",
    "MemoryTree",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256

Subtree = tuple[int, int]  # (level, index): leaves [index << level, (index + 1) << level)
SubtreeGetter = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_subtrees(begin: int, end: int) -> list[Subtree]:
    """The complete subtrees, left to right, whose fold is ``MTH(D[begin:end])``.

    Valid for every range the RFC recursion produces (``begin`` a multiple of the largest
    power of two not above ``end - begin``): the sizes then decrease left to right.
    """
    out: list[Subtree] = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        out.append((level, begin >> level))
        begin += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """``MTH`` of a range from its complete subtrees (decreasing sizes): fold right to left."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_plan(index: int, size: int) -> list[list[Subtree]]:
    """``PATH(index, D[size])`` (RFC 9162 §2.1.3.1) as subtrees, leaf end first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    path: list[list[Subtree]] = []
    begin, end = 0, size
    while end - begin > 1:
        k = _split(end - begin)
        if index - begin < k:
            path.append(range_subtrees(begin + k, end))
            end = begin + k
        else:
            path.append(range_subtrees(begin, begin + k))
            begin += k
    path.reverse()
    return path


def consistency_plan(old: int, new: int) -> list[list[Subtree]]:
    """``PROOF(old, D[new])`` (RFC 9162 §2.1.4.1) as subtrees; empty when ``old`` is 0 or
    equal to ``new``."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old == 0 or old == new:
        return []
    proof: list[list[Subtree]] = []
    begin, end, complete = 0, new, True
    m = old
    while True:
        n = end - begin
        if m == n:
            if not complete:
                proof.append(range_subtrees(begin, end))
            break
        k = _split(n)
        if m <= k:
            proof.append(range_subtrees(begin + k, end))
            end = begin + k
        else:
            proof.append(range_subtrees(begin, begin + k))
            begin += k
            m -= k
            complete = False
    proof.reverse()
    return proof


def _resolve(plan: Iterable[list[Subtree]], subtree: SubtreeGetter) -> list[bytes]:
    return [fold([subtree(level, index) for level, index in item]) for item in plan]


def inclusion_proof(index: int, size: int, subtree: SubtreeGetter) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves."""
    return _resolve(inclusion_plan(index, size), subtree)


def consistency_proof(old: int, new: int, subtree: SubtreeGetter) -> list[bytes]:
    """The consistency proof from the tree of ``old`` leaves to the one of ``new``."""
    return _resolve(consistency_plan(old, new), subtree)


def root_from_subtrees(size: int, subtree: SubtreeGetter) -> bytes:
    """``MTH(D[0:size])`` from complete subtrees (one per set bit of ``size``)."""
    return fold([subtree(level, index) for level, index in range_subtrees(0, size)])


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2, steps 1-4 and sn check).

    Raises ``ValueError`` when the proof cannot belong to this index and size at all (too
    short, too long, index out of range); the caller compares the result with the root.
    """
    if index >= size or index < 0:  # step 1
        raise ValueError(f"leaf index {index} is not below the tree size {size}")
    fn, sn = index, size - 1  # step 2
    r = leaf  # step 3
    for p in proof:  # step 4
        if sn == 0:  # 4a
            raise ValueError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1  # 4c
    if sn != 0:  # step 5
        raise ValueError("the inclusion proof is shorter than the tree is deep")
    return r


def _sized(*hashes: bytes) -> bool:
    return all(len(h) == HASH_SIZE for h in hashes)


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """True iff ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree of ``root``
    (every hash must be 32 bytes)."""
    if not _sized(leaf, root, *proof):
        return False
    try:
        return root_from_inclusion(index, size, leaf, proof) == root
    except ValueError:
        return False


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True iff ``proof`` shows the tree of ``old_root`` is a prefix of the one of ``new_root``.

    RFC 9162 §2.1.4.2, with the edge cases it leaves to the caller made explicit (as
    transparency-dev/merkle does): equal sizes need an empty proof and equal roots; size 0 is
    a prefix of everything with an empty proof; a larger old size never verifies.
    """
    if old < 0 or new < old or not _sized(*proof):
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof
    if not proof:  # step 1
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # step 2: first is an exact power of 2
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1  # step 3
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # 6a
            return False
        if fn & 1 or fn == sn:  # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1  # 6c
    return fr == old_root and sr == new_root and sn == 0  # step 7


class Frontier:
    """The right edge of a growing tree: one complete-subtree hash per set bit of ``size``.

    O(log n) memory. :meth:`append` returns the complete subtrees the new leaf closed, as
    ``(level, index, hash)`` from level 1 up, so a caller can store the ones it keeps.
    """

    __slots__ = ("size", "hashes", "head")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != size.bit_count():
            raise ValueError(f"a frontier of size {size} holds {size.bit_count()} hashes")
        self.size = size
        self.hashes = list(hashes)  # highest level first, as range_subtrees(0, size) orders
        self.head = ""  # what the owner ties it to (the audit log: the chain head hash)

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        closed: list[tuple[int, int, bytes]] = []
        h, n, level = leaf, self.size, 0
        hashes = self.hashes
        while n & 1:
            h = node_hash(hashes.pop(), h)
            n >>= 1
            level += 1
            closed.append((level, (self.size + 1 >> level) - 1, h))
        hashes.append(h)
        self.size += 1
        return closed

    def root(self) -> bytes:
        return fold(self.hashes)


class MemoryTree:
    """A whole tree in memory (tests, small logs): every level kept, any subtree at once."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for data in leaves:
            self.append(data)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, data: bytes) -> None:
        self.append_hash(leaf_hash(data))

    def append_hash(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            pair = self.levels[level][-2:]
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append(node_hash(pair[0], pair[1]))
            level += 1

    def subtree(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        return root_from_subtrees(self.size if size is None else size, self.subtree)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self.size if size is None else size, self.subtree)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        return consistency_proof(old, self.size if new is None else new, self.subtree)
