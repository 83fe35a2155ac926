"""The benchmark's own arithmetic (bench/stats.py): percentiles, the log-bucketed histogram,
ratios and targets, retry lateness, the flat-lag decision and the stepping rule."""

from __future__ import annotations

import math
import random

import pytest

from bench import stats


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, None),
        ([7.0], 0, 7.0),
        ([7.0], 99, 7.0),
        ([1, 2, 3, 4], 50, 2),
        ([1, 2, 3, 4], 75, 3),
        ([1, 2, 3, 4], 76, 4),
        ([1, 2, 3, 4], 100, 4),
        (list(range(1, 101)), 99, 99),
        (list(range(1, 101)), 95, 95),
        (list(range(1, 1001)), 99.9, 999),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float) -> None:
    assert stats.percentile(values, p) == expected


def test_percentile_outside_0_100_is_refused() -> None:
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)


def test_percentiles_name_each_and_add_max_and_count() -> None:
    assert stats.percentiles([3, 1, 2], (50, 99)) == {"p50": 2, "p99": 3, "max": 3, "count": 3}
    assert stats.percentiles([], (50,)) == {}


@pytest.mark.parametrize("value", [0, 1, 127, 128, 129, 255, 256, 1000, 65_535, 10**9])
def test_every_value_lands_in_a_bucket_whose_range_holds_it(value: int) -> None:
    low, high = stats.LogHistogram.bucket_range(stats.LogHistogram.bucket_of(value))
    assert low <= value <= high
    assert high - low <= max(0, value) / 2**stats.SUB_BUCKET_BITS  # < 1 % wide


def test_buckets_are_ordered_like_their_values() -> None:
    values = [0, 5, 127, 128, 200, 255, 256, 511, 512, 10_000, 10**7]
    buckets = [stats.LogHistogram.bucket_of(v) for v in values]
    assert buckets == sorted(buckets)


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([10, 20, 30, 40], 50, 20),  # small values are exact
        ([10, 20, 30, 40], 100, 40),
        ([100] * 99 + [5000], 99, 100),
        ([100] * 98 + [5000] * 2, 99, 5000),
    ],
)
def test_histogram_percentiles_of_known_sets(values: list[int], p: float, expected: int) -> None:
    h = stats.LogHistogram()
    for v in values:
        h.record(v)
    got = h.percentile(p)
    assert got is not None
    assert abs(got - expected) <= expected / 100


def test_histogram_agrees_with_sorted_samples_within_one_percent() -> None:
    rng = random.Random(42)
    samples = [int(rng.lognormvariate(8, 1.5)) for _ in range(20_000)]
    h = stats.LogHistogram()
    for v in samples:
        h.record(v)
    ordered = sorted(samples)
    for p in (50, 90, 95, 99, 99.9):
        exact = stats.percentile(ordered, p)
        assert exact is not None
        got = h.percentile(p)
        assert got is not None
        assert abs(got - exact) <= max(1, exact * 0.01), p
    assert h.percentile(100) == max(samples)
    assert h.total == len(samples)


def test_empty_histogram_has_no_percentile() -> None:
    assert stats.LogHistogram().percentile(50) is None
    assert stats.latency_summary_ms([]) == {}


def test_latency_summary_is_in_milliseconds_and_clamps_negative_skew() -> None:
    summary = stats.latency_summary_ms([0.010] * 98 + [0.200, -0.001])
    assert summary["count"] == 100
    assert summary["p50"] == pytest.approx(10.0, rel=0.01)
    assert summary["p99"] == pytest.approx(10.0, rel=0.01)
    assert summary["max"] == pytest.approx(200.0)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [(50.0, 100.0, 0.5), (3.0, 2.0, 1.5), (None, 2.0, None), (1.0, None, None), (1.0, 0.0, None)],
)
def test_ratio(a: float | None, b: float | None, expected: float | None) -> None:
    assert stats.ratio(a, b) == expected


@pytest.mark.parametrize(
    ("value", "op", "threshold", "met", "verdict"),
    [
        (0.6, ">=", 0.5, True, "MET"),
        (0.4, ">=", 0.5, False, "NOT MET"),
        (0.5, ">=", 0.5, True, "MET"),
        (49.0, "<=", 50.0, True, "MET"),
        (51.0, "<=", 50.0, False, "NOT MET"),
        (0, "==", 0, True, "MET"),
        (2, "==", 0, False, "NOT MET"),
        (None, ">=", 0.5, None, "not measured"),
    ],
)
def test_targets(
    value: float | None, op: str, threshold: float, met: bool | None, verdict: str
) -> None:
    target = stats.Target("t", value, op, threshold)
    assert target.met is met
    assert target.verdict == verdict


@pytest.mark.parametrize(
    ("delay", "limit"), [(1.0, 1.0), (30.0, 1.0), (300.0, 6.0), (7200.0, 144.0)]
)
def test_retry_lateness_limit_is_1s_or_2_percent(delay: float, limit: float) -> None:
    assert stats.retry_lateness_limit(delay) == pytest.approx(limit)


SCHEDULE = [0.0, 1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize(
    ("arrivals", "late", "early"),
    [
        ({"d1": [(1, 100.0), (2, 101.2)]}, [0.2], 0),  # due 101.0, came 101.2
        ({"d1": [(1, 100.0), (2, 101.0), (3, 103.5)]}, [0.0, 0.5], 0),
        ({"d1": [(1, 100.0), (2, 100.9)]}, [-0.1], 1),  # early
        ({"d1": [(2, 101.0)]}, [], 0),  # attempt 1 unseen: nothing to compare
        ({"d1": [(1, 100.0), (3, 104.0)]}, [], 0),  # attempt 2 missing: no pair
        ({"d1": [(1, 100.0), (2, 101.3), (2, 101.1)]}, [0.1], 0),  # duplicate: first arrival
        ({"d1": [(2, 101.1), (1, 100.0)]}, [0.1], 0),  # order of the log does not matter
        (
            {"a": [(1, 0.0), (2, 1.5)], "b": [(1, 10.0), (2, 11.25), (3, 13.25)]},
            [0.5, 0.25, 0.0],
            0,
        ),
    ],
)
def test_retry_lateness(
    arrivals: dict[str, list[tuple[int, float]]], late: list[float], early: int
) -> None:
    found = stats.retry_lateness(arrivals, SCHEDULE)
    assert found.values == pytest.approx(sorted(late))
    assert found.early == early


def test_lateness_ignores_attempts_beyond_the_schedule() -> None:
    found = stats.retry_lateness({"d": [(1, 0.0), (2, 1.0), (6, 99.0), (5, 98.0)]}, SCHEDULE)
    assert found.values == pytest.approx([0.0])


@pytest.mark.parametrize(
    ("points", "expected"),
    [([], 0.0), ([(1, 5)], 0.0), ([(0, 0), (1, 2), (2, 4)], 2.0), ([(0, 3), (1, 3)], 0.0),
     ([(1, 1), (1, 5)], 0.0)],
)  # fmt: skip
def test_slope(points: list[tuple[float, float]], expected: float) -> None:
    assert stats.slope(points) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("samples", "rate", "flat", "why"),
    [
        ([(1, 50), (2, 60), (3, 55), (4, 58), (5, 52), (6, 57)], 500, True, "flat"),
        ([(1, 100), (2, 300), (3, 500), (4, 700), (5, 900), (6, 1100)], 500, False, "grows"),
        # grows slowly but steadily: 3 % of the rate is tolerated, 10 % is not
        ([(t, 15 * t) for t in range(1, 9)], 500, True, "flat"),
        ([(t, 50 * t) for t in range(1, 9)], 500, False, "grows"),
        # flat but far behind production: already lost
        ([(t, 5000) for t in range(1, 9)], 500, False, "above"),
        # a burst in the warm-up half that came back down is fine
        ([(1, 900), (2, 800), (3, 100), (4, 90), (5, 95), (6, 92)], 500, True, "flat"),
        ([(1, 10), (2, 10)], 500, False, "too few"),
        # a low rate's commit sawtooth (6 msg/s over a 4 s step) is not growth; 100 msg/s is
        ([(1, 10), (2, 20), (3, 15), (4, 32)], 50, True, "flat"),
        ([(1, 100), (2, 200), (3, 300), (4, 400)], 50, False, "grows"),
        # a 4 s step's lag that climbs all through it, though its last two samples are close
        # (a quick run at 1,600 ev/s, two messages per event); a noisy one that does not climb
        ([(1.0, 660), (2.0, 1149), (3.0, 1760), (4.1, 1919)], 3200, False, "grows"),
        ([(1.0, 225), (2.0, 27), (3.3, 586), (4.4, 0)], 1600, True, "flat"),
    ],
)
def test_lag_is_flat(samples: list[tuple[float, float]], rate: float, flat: bool, why: str) -> None:
    verdict = stats.lag_is_flat(samples, rate)
    assert verdict.flat is flat
    assert why in verdict.reason


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([], None),
        ([(100, True), (200, True)], 200),
        ([(100, True), (200, False)], 100),
        ([(100, True), (200, False), (150, True)], 150),
        ([(100, True), (200, False), (150, False)], 100),
        ([(200, False), (100, True)], 100),
        ([(200, False), (100, False)], None),
        # a flat rate above a failed one is noise, not capacity
        ([(100, True), (200, False), (400, True)], 100),
    ],
)
def test_highest_flat_rate(steps: list[tuple[float, bool]], expected: float | None) -> None:
    assert stats.highest_flat_rate(steps) == expected


@pytest.mark.parametrize(
    ("steps", "refinements", "expected"),
    [
        ([(50, True)], 1, 100),  # double while flat
        ([(50, True), (100, True)], 1, 200),
        ([(50, True), (100, False)], 1, 75),  # bisect once
        ([(50, True), (100, False), (75, True)], 1, None),  # done
        ([(50, True), (100, False)], 0, None),  # no refinement wanted
        ([(50, True), (100, True), (200, False)], 2, 150),
        ([(50, True), (100, True), (200, False), (150, False)], 2, 125),
        ([(50, True), (100, True), (200, False), (150, False), (125, True)], 2, None),
        ([(200, False)], 1, 100),  # nothing flat yet: halve
        ([(200, False), (100, False)], 1, 50),
        ([(200, False), (100, True)], 1, 150),  # then bisect
        ([(200, False), (100, True), (150, True)], 1, None),
        ([(12, False)], 1, None),  # would go below the floor of 10
        ([(10, True), (11, False)], 1, None),  # nothing between them
    ],
)
def test_next_rate(
    steps: list[tuple[float, bool]], refinements: int, expected: float | None
) -> None:
    assert stats.next_rate(steps, refinements=refinements, floor=10) == expected


def test_next_rate_needs_a_first_step() -> None:
    with pytest.raises(ValueError):
        stats.next_rate([])


@pytest.mark.parametrize(
    ("expected", "arrived", "counts"),
    [
        (["a", "b"], ["a", "b"], (2, 2, 0, 0, 0)),
        (["a", "b"], ["a"], (2, 1, 1, 0, 0)),
        (["a", "b"], ["a", "a", "b", "a"], (2, 2, 0, 2, 0)),
        (["a"], ["a", "z", "z"], (1, 1, 0, 0, 1)),
        ([], [], (0, 0, 0, 0, 0)),
    ],
)
def test_delivery_counts(
    expected: list[str], arrived: list[str], counts: tuple[int, int, int, int, int]
) -> None:
    c = stats.delivery_counts(expected, arrived)
    assert (c.expected, c.received, c.lost, c.duplicates, c.unexpected) == counts


@pytest.mark.parametrize(
    ("cpu", "deliveries", "expected"), [(1.0, 1000, 1000.0), (0.5, 0, None), (0.002, 4, 500.0)]
)
def test_cpu_per_delivery_in_microseconds(
    cpu: float, deliveries: int, expected: float | None
) -> None:
    got = stats.cpu_us_per_delivery(cpu, deliveries)
    assert got == (None if expected is None else pytest.approx(expected))


def test_littles_law() -> None:
    assert stats.littles_law_rate(16, 0.05) == pytest.approx(320)
    assert math.isclose(stats.littles_law_rate(256, 0.002), 128_000)


def test_first_times_keep_the_earliest_of_duplicates() -> None:
    got = stats.first_times([("a", 3.0), ("b", 1.0), ("a", 2.0), ("a", 5.0)])
    assert got == {"a": 2.0, "b": 1.0}


@pytest.mark.parametrize(
    ("times", "count", "seconds", "per_s"),
    [
        ([], 0, 0.0, None),
        ([5.0], 1, 0.0, None),  # one arrival spans no interval
        ([2.0, 2.0], 2, 0.0, None),  # a zero-length span has no rate
        ([10.0, 11.0], 2, 1.0, 1.0),
        ([13.0, 10.0, 11.0, 12.0, 14.0], 5, 4.0, 1.0),  # order does not matter
        ([float(i) / 1000 for i in range(20_001)], 20_001, 20.0, 1000.0),
    ],
)
def test_drain_rate_counts_intervals_from_first_to_last_arrival(
    times: list[float], count: int, seconds: float, per_s: float | None
) -> None:
    d = stats.drain_rate(times)
    assert (d.count, d.seconds) == (count, pytest.approx(seconds))
    assert d.per_s == (None if per_s is None else pytest.approx(per_s))
    if times:
        assert (d.first, d.last) == (min(times), max(times))


def test_record_lag_is_visible_minus_answered_and_counts_the_missing() -> None:
    answered = {"a": 10.0, "b": 10.0, "c": 10.0, "d": 10.0}
    visible = {"a": 10.25, "b": 11.5, "c": 9.999, "z": 1.0}  # z was never answered: ignored
    lag = stats.record_lag(answered, visible)
    assert lag.values == [0.0, pytest.approx(0.25), pytest.approx(1.5)]
    assert (lag.missing, lag.clamped) == (1, 1)


def test_record_lag_of_nothing() -> None:
    assert stats.record_lag({}, {"a": 1.0}) == stats.RecordLag([], 0, 0)


def test_open_loop_requests_are_due_on_a_fixed_schedule() -> None:
    due = [stats.open_loop_due(100.0, 200.0, i) for i in (0, 1, 200, 1000)]
    assert due == [100.0, pytest.approx(100.005), pytest.approx(101.0), pytest.approx(105.0)]
    with pytest.raises(ValueError):
        stats.open_loop_due(0.0, 0.0, 1)


@pytest.mark.parametrize(
    ("rate", "per_s", "expected"),
    [(100, 25, 4), (1000, 25, 40), (30, 25, 2), (1, 25, 2), (2000, 25, 80)],
)
def test_every_nth_samples_about_per_s_and_never_every_event(
    rate: float, per_s: float, expected: int
) -> None:
    assert stats.every_nth(rate, per_s) == expected


def test_every_nth_needs_a_positive_sample_rate() -> None:
    with pytest.raises(ValueError):
        stats.every_nth(100, 0)


def test_cpu_ms_converts_microseconds() -> None:
    assert stats.cpu_ms(4700.0) == pytest.approx(4.7)
    assert stats.cpu_ms(None) is None


def test_cpu_used_per_role_between_snapshots() -> None:
    before = {"worker": (1.0, 0.5), "recorder": (2.0, 1.0)}
    after = {"worker": (3.0, 1.0), "recorder": (2.5, 1.25), "scheduler": (9.0, 9.0)}
    used = stats.cpu_used(before, after)
    assert used == {"worker": pytest.approx(2.5), "recorder": pytest.approx(0.75)}
    per = stats.cpu_per_delivery(used, 500)
    assert per == {"worker": pytest.approx(5000.0), "recorder": pytest.approx(1500.0)}
    assert stats.cpu_per_delivery(used, 0) == {"worker": None, "recorder": None}
