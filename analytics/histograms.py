"""Mergeable duration histograms: fixed, log-spaced buckets shared by every daily row.

A percentile of a range cannot be computed from daily percentiles (an average of p95s is no p95), but
the bucket counts of any set of days add up, and a percentile read from the merged counts is off by at
most half a bucket: the buckets grow by 2^(1/4) (~19 %), so a value is reported within ~9 % of the truth.
Changing ``BOUNDS_MS`` changes what stored rows mean: re-run the roll-up over every day afterwards.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

# Bucket thresholds in milliseconds: 10 ms · 2^(k/4) for k = 0..56 (10 ms .. ~164 s). As Postgres'
# ``width_bucket(value, BOUNDS_MS)``: bucket 0 holds values below 10 ms, bucket i values in
# [BOUNDS_MS[i-1], BOUNDS_MS[i]), the last bucket everything from ~164 s up.
BOUNDS_MS: list[int] = [round(10 * 2 ** (k / 4)) for k in range(57)]
BUCKETS = len(BOUNDS_MS) + 1


def empty() -> list[int]:
    return [0] * BUCKETS


def bucket_of(value_ms: int) -> int:
    """The bucket a duration falls in (the same answer as ``width_bucket`` in SQL)."""
    return bisect.bisect_right(BOUNDS_MS, value_ms)


def from_values(values: Iterable[int]) -> list[int]:
    counts = empty()
    for value in values:
        counts[bucket_of(value)] += 1
    return counts


def merge(histograms: Iterable[Sequence[int]]) -> list[int]:
    total = empty()
    for counts in histograms:
        for i, n in enumerate(counts):
            total[i] += n
    return total


def representative(bucket: int) -> int:
    """The value reported for a bucket: the geometric middle of its bounds (the edge for the open ends)."""
    if bucket == 0:
        return BOUNDS_MS[0]
    if bucket >= len(BOUNDS_MS):
        return BOUNDS_MS[-1]
    return round(math.sqrt(BOUNDS_MS[bucket - 1] * BOUNDS_MS[bucket]))


def percentile(counts: Sequence[int], q: float) -> int | None:
    """The q-quantile (0 < q ≤ 1) in milliseconds, or None when there is nothing counted."""
    total = sum(counts)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))  # the rank-th smallest value, as the nearest-rank method
    seen = 0
    for bucket, n in enumerate(counts):
        seen += n
        if seen >= rank:
            return representative(bucket)
    return representative(len(counts) - 1)  # pragma: no cover - unreachable, seen reaches total
