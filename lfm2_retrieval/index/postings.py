"""The inverted file's chunk lists, Elias-Fano coded.

For each centroid the sorted, distinct numbers of the segment's chunks that have a token
there. A list of n numbers below U costs n * L + n + (U >> L) < n * (L + 3) bits with
L = floor(log2(U / n)), whatever their spread: about 13 bits an entry at a million chunks and
65,536 centroids, where plain uint16 numbers (in 65,536-chunk blocks, the previous format) cost 16 and a block table on
top. That difference is what keeps an nbits=2 index under 36 bytes per 128-d token at 1M
chunks. No library here codes posting lists for numpy/memory maps, so this is written out.

Each list is two byte-aligned parts, both sized by n and U alone:
    low   the L low bits of each number, packed back to back (little-endian bit order)
    high  a bit vector where number i sets bit (number >> L) + i: unary-coded gaps
`index` holds, per centroid, where its entries start (so counts are differences) and where its
bytes start; decoding needs nothing else.
"""

from __future__ import annotations

import numba
import numpy as np

_OPTIONS = dict(nogil=True, cache=True, boundscheck=False)
_TRAILING_ZEROS = np.array([(b & -b).bit_length() - 1 if b else 8 for b in range(256)], dtype=np.int64)


def low_bits(n: int, universe: int) -> int:
    """Elias-Fano's L: how many low bits of each number are stored verbatim."""
    if n == 0 or universe <= n:
        return 0
    return (universe // n).bit_length() - 1  # the largest L with n * 2^L <= U


def _list_bytes(counts: np.ndarray, universe: int) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, L) of every list, from its count: ceil(n*L / 8) + ceil((n + (U-1 >> L) + 1) / 8)."""
    counts = counts.astype(np.int64)
    ratio = universe // np.maximum(counts, 1)
    lows = np.where(ratio > 1, np.floor(np.log2(np.maximum(ratio, 1))), 0).astype(np.int64)
    # log2 in floating point may miss an exact power of two by a hair: settle on the definition.
    lows -= (lows > 0) & ((counts << lows) > universe)
    lows += (counts << (lows + 1)) <= universe
    lows[counts == 0] = 0
    high_bits = counts + ((universe - 1) >> lows) + 1
    return np.where(counts > 0, (counts * lows + 7) // 8 + (high_bits + 7) // 8, 0), lows


def encode(list_of_entry: np.ndarray, values: np.ndarray, num_lists: int, universe: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Code sorted (list, value) pairs; returns (index [num_lists + 1, 2], data uint8).

    `list_of_entry` must be non-decreasing and `values` strictly increasing within a list,
    every value below `universe`.
    """
    counts = np.bincount(list_of_entry, minlength=num_lists).astype(np.int64)
    sizes, lows = _list_bytes(counts, universe)
    total_entries, total_bytes = int(counts.sum()), int(sizes.sum())
    dtype = np.uint32 if max(total_entries, total_bytes) < 1 << 32 else np.uint64
    index = np.zeros((num_lists + 1, 2), dtype=dtype)
    np.cumsum(counts, out=index[1:, 0])
    np.cumsum(sizes, out=index[1:, 1])
    data = np.zeros(total_bytes, dtype=np.uint8)
    _encode(index[:, 0].astype(np.int64), index[:, 1].astype(np.int64), lows,
            values.astype(np.int64), data)
    return index, data


def decode(index: np.ndarray, data: np.ndarray, universe: int, lists: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """(values, list) of every entry of `lists`, list by list, values ascending within each."""
    lists = np.ascontiguousarray(lists, dtype=np.int64)
    entry_starts = index[lists, 0].astype(np.int64)
    counts = index[lists + 1, 0].astype(np.int64) - entry_starts
    byte_starts = index[lists, 1].astype(np.int64)
    out_starts = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum(counts, out=out_starts[1:])
    values = np.empty(int(out_starts[-1]), dtype=np.int64)
    _decode(np.asarray(data), byte_starts, counts, out_starts, universe, values)
    return values, np.repeat(lists, counts)


@numba.njit(**_OPTIONS)
def _encode(entry_starts, byte_starts, lows, values, data):  # pragma: no cover (compiled)
    for k in range(len(entry_starts) - 1):
        first, n = entry_starts[k], entry_starts[k + 1] - entry_starts[k]
        if n == 0:
            continue
        low, base = lows[k], byte_starts[k]
        high_base = base + (n * low + 7) // 8
        mask = (np.int64(1) << low) - 1
        for i in range(n):
            v = values[first + i]
            bits, pos = v & mask, i * low
            for b in range(low):  # a few bits per entry: a plain loop is fast enough at build time
                if (bits >> b) & 1:
                    p = pos + b
                    data[base + (p >> 3)] |= np.uint8(1 << (p & 7))
            p = (v >> low) + i
            data[high_base + (p >> 3)] |= np.uint8(1 << (p & 7))


@numba.njit(**_OPTIONS)
def _decode(data, byte_starts, counts, out_starts, universe, out):  # pragma: no cover (compiled)
    for j in range(len(counts)):
        n = counts[j]
        if n == 0:
            continue
        low = 0
        if universe > n:
            while (n << (low + 1)) <= universe:
                low += 1
        o, ptr = out_starts[j], byte_starts[j]
        # Low parts: a bit stream, refilled a byte at a time.
        mask = (np.int64(1) << low) - 1
        acc, have = np.int64(0), 0
        for i in range(n):
            while have < low:
                acc |= np.int64(data[ptr]) << have
                ptr += 1
                have += 8
            out[o + i] = acc & mask
            acc >>= low
            have -= low
        # High parts start at the next byte: the i-th set bit, at position p, adds (p - i) << L.
        ptr = byte_starts[j] + (n * low + 7) // 8
        i, position = 0, np.int64(0)
        while i < n:
            w = data[ptr]
            while w != 0 and i < n:  # one step per set bit, not per bit
                out[o + i] |= (position + _TRAILING_ZEROS[w] - i) << low
                w &= w - 1
                i += 1
            ptr += 1
            position += 8
