"""Percentiles read from merged histograms stay within half a bucket of the exact value."""

from __future__ import annotations

import random

from analytics import histograms


def exact(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(0, -(-int(q * 1000) * len(ordered) // 1000) - 1)]


def test_percentiles_of_merged_histograms_are_within_a_bucket():
    rng = random.Random(7)
    days = [[int(rng.lognormvariate(6.5, 1.0)) for _ in range(500)] for _ in range(7)]
    merged = histograms.merge(histograms.from_values(day) for day in days)
    every = [value for day in days for value in day]
    for q in (0.5, 0.95):
        estimate, truth = histograms.percentile(merged, q), exact(every, q)
        assert abs(estimate - truth) / truth < 0.2, (q, estimate, truth)


def test_empty_histogram_has_no_percentile_and_extremes_land_in_the_open_buckets():
    assert histograms.percentile(histograms.empty(), 0.5) is None
    assert histograms.bucket_of(0) == 0 and histograms.bucket_of(10**9) == histograms.BUCKETS - 1
    assert histograms.percentile(histograms.from_values([10**9]), 0.95) == histograms.BOUNDS_MS[-1]
