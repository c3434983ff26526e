"""Exact percentiles of tens of millions of latencies, placed rather than sorted.

A percentile needs one or two order statistics, and ``numpy.partition`` puts
them in place in linear time: nothing is ever sorted whole, and nothing is
estimated. Two interpolations are used, each bit for bit what its library
gives on the full column:

- ``pandas_quantiles``: linear between closest ranks (Hyndman-Fan type 7) with
  pandas' arithmetic (``SeriesGroupBy.quantile``): the latency table and the
  per-bucket percentiles;
- ``numpy.quantile`` itself, on an array it may reorder: the percentile curves.

``order_by_bin`` groups one name's latencies by time bucket (a counting sort,
a bounded chunk at a time) so each bucket's percentiles come from its own slice.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Rows reordered per step of ``order_by_bin``: bounds its scratch memory (about 100 MB).
ORDER_CHUNK = 1 << 22


def pandas_ranks(n: int, qs: Sequence[float]) -> list[int]:
    """The 0-based ranks ``pandas_quantiles`` reads for ``n`` values."""
    ranks: set[int] = set()
    for q in qs:
        position = q * (n - 1)
        low = int(position)
        ranks.add(low)
        if position % 1 != 0.0:
            ranks.add(low + 1)
    return sorted(r for r in ranks if r < n)


def pandas_quantiles(values: np.ndarray, qs: Sequence[float]) -> list[float]:
    """Quantiles of ``values`` as pandas computes them (linear), from an array already
    partitioned at ``pandas_ranks(len(values), qs)``: ``v[i] + (v[i+1] - v[i]) * frac``
    with ``i = int(q * (n - 1))``."""
    n = len(values)
    out: list[float] = []
    for q in qs:
        position = q * (n - 1)
        low = int(position)
        frac = position % 1
        value = float(values[low])
        if frac != 0.0:
            value = value + (float(values[low + 1]) - value) * frac
        out.append(value)
    return out


def exact_pandas_quantiles(values: np.ndarray, qs: Sequence[float]) -> list[float]:
    """``pandas_quantiles`` of ``values``, which it partitions in place."""
    if len(values) > 1:
        values.partition(pandas_ranks(len(values), qs))
    return pandas_quantiles(values, qs)


def order_by_bin(values: list[np.ndarray], bins: list[np.ndarray], flags: list[np.ndarray],
                 n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pieces of ``values`` and ``flags`` regrouped by bin (``0 <= bins < n_bins``), and where each bin starts.

    Returns ``(values_by_bin, flags_by_bin, starts)``: bin ``b`` holds
    ``values_by_bin[starts[b]:starts[b + 1]]``. A counting sort done
    ``ORDER_CHUNK`` rows at a time. The three lists are emptied as their pieces
    are placed, so the memory held stays about one copy of the values.
    """
    counts = np.zeros(n_bins, dtype=np.int64)
    for piece in bins:
        counts += np.bincount(piece, minlength=n_bins)
    starts = np.zeros(n_bins + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    fill = starts[:-1].copy()
    total = int(starts[-1])
    out_values = np.empty(total, dtype=np.float64)
    out_flags = np.empty(total, dtype=np.uint8)
    while values:
        piece_values, piece_bins, piece_flags = values.pop(0), bins.pop(0), flags.pop(0)
        for lo in range(0, len(piece_values), ORDER_CHUNK):
            chunk = piece_bins[lo:lo + ORDER_CHUNK]
            order = np.argsort(chunk, kind="stable")  # radix sort for 8- and 16-bit bins
            ordered = chunk[order]
            here = np.bincount(chunk, minlength=n_bins)
            first = np.cumsum(here) - here
            positions = fill[ordered] + (np.arange(len(chunk)) - first[ordered])
            out_values[positions] = piece_values[lo:lo + ORDER_CHUNK][order]
            out_flags[positions] = piece_flags[lo:lo + ORDER_CHUNK][order]
            fill += here
    return out_values, out_flags, starts


def bin_quantiles(values_by_bin: np.ndarray, starts: np.ndarray,
                  qs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``pandas_quantiles`` of each non-empty bin (``order_by_bin``), reordering within bins.

    Returns ``(bins, quantiles)``: the non-empty bins and a ``(len(bins), len(qs))`` array.
    """
    sizes = np.diff(starts)
    present = np.flatnonzero(sizes)
    out = np.empty((len(present), len(qs)), dtype=np.float64)
    for row, b in enumerate(present):
        segment = values_by_bin[starts[b]:starts[b + 1]]
        out[row] = exact_pandas_quantiles(segment, qs)
    return present, out
