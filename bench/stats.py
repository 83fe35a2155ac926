"""The bench's arithmetic, pure and deterministic: no I/O, no clocks.

- ``LogHistogram``: an HDR-style log-bucketed histogram (128 linear sub-buckets per power of
  two, so a reported percentile is within 1 % of the true sample), and ``percentile`` over
  sorted samples (nearest rank) for small sets.
- ``ratio``, ``target``: the ratios PERFORMANCE.md asks for and whether each is met.
- ``retry_lateness``: actual minus scheduled time of every retry, from a receiver's arrivals.
- ``lag_is_flat``, ``highest_flat_rate``, ``next_rate``: the stepped-rate decision.
- ``delivery_counts``: lost and duplicate deliveries.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

SUB_BUCKET_BITS = 7  # 128 sub-buckets per power of two: < 0.8 % relative error


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None for no values."""
    if not sorted_values:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside 0..100")
    rank = max(1, math.ceil(round(p / 100 * len(sorted_values), 9)))  # 99.9 % of 1000 is 999
    return sorted_values[rank - 1]


def percentiles(values: Iterable[float], ps: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    ordered = sorted(values)
    out: dict[str, float] = {}
    for p in ps:
        v = percentile(ordered, p)
        if v is not None:
            out[f"p{p:g}"] = v
    if ordered:
        out["max"] = ordered[-1]
        out["count"] = len(ordered)
    return out


@dataclass
class LogHistogram:
    """Counts of non-negative integers (e.g. microseconds) in log-linear buckets.

    Values below 2**SUB_BUCKET_BITS are exact; above, each power of two is split into
    2**SUB_BUCKET_BITS equal buckets, and a percentile answers the bucket's midpoint.
    """

    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0
    max_value: int = 0

    @staticmethod
    def bucket_of(value: int) -> int:
        if value < 0:
            raise ValueError("negative value")
        if value < (1 << SUB_BUCKET_BITS):
            return value
        shift = value.bit_length() - 1 - SUB_BUCKET_BITS
        return (shift + 1) << SUB_BUCKET_BITS | (value >> shift) - (1 << SUB_BUCKET_BITS)

    @staticmethod
    def bucket_range(bucket: int) -> tuple[int, int]:
        """Lowest and highest value that land in ``bucket``."""
        if bucket < (1 << SUB_BUCKET_BITS):
            return bucket, bucket
        shift = (bucket >> SUB_BUCKET_BITS) - 1
        sub = bucket & ((1 << SUB_BUCKET_BITS) - 1)
        low = (sub + (1 << SUB_BUCKET_BITS)) << shift
        return low, low + (1 << shift) - 1

    def record(self, value: int, count: int = 1) -> None:
        b = self.bucket_of(value)
        self.counts[b] = self.counts.get(b, 0) + count
        self.total += count
        self.max_value = max(self.max_value, value)

    def percentile(self, p: float) -> int | None:
        if self.total == 0:
            return None
        if not 0 <= p <= 100:
            raise ValueError(f"percentile {p} outside 0..100")
        rank = max(1, math.ceil(round(p / 100 * self.total, 9)))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                low, high = self.bucket_range(b)
                return min((low + high) // 2, self.max_value)
        return self.max_value  # pragma: no cover (rank <= total)


def latency_summary_ms(seconds: Iterable[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds through a LogHistogram of microseconds.

    Negative values (clock skew between the producer's stamp and a ms-resolution receiver
    log) are clamped to 0."""
    h = LogHistogram()
    for s in seconds:
        h.record(max(0, round(s * 1_000_000)))
    if h.total == 0:
        return {}
    out = {f"p{p}": (h.percentile(p) or 0) / 1000 for p in (50, 95, 99)}
    out["max"] = h.max_value / 1000
    out["count"] = h.total
    return out


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    op: str  # ">=" or "<=" or "=="
    threshold: float

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        if self.op == ">=":
            return self.value >= self.threshold
        if self.op == "<=":
            return self.value <= self.threshold
        if self.op == "==":
            return self.value == self.threshold
        raise ValueError(self.op)

    @property
    def verdict(self) -> str:
        return {True: "MET", False: "NOT MET", None: "not measured"}[self.met]


def retry_lateness_limit(delay_s: float) -> float:
    """PERFORMANCE.md: retry lateness p99 <= max(1 s, 2 % of the delay)."""
    return max(1.0, 0.02 * delay_s)


@dataclass(frozen=True)
class Lateness:
    values: list[float]  # seconds, actual - scheduled, one per retry seen
    early: int  # retries that arrived before they were due


def retry_lateness(
    arrivals: Mapping[str, Sequence[tuple[int, float]]], delays: Sequence[float]
) -> Lateness:
    """Lateness of every retry.

    ``arrivals[delivery_id]`` are ``(attempt, arrival time)`` at the receiver; ``delays[n]`` is
    the delay before attempt n+1 (``delays[0]`` is 0, the first attempt). Attempt n is due
    ``delays[n-1]`` after attempt n-1 reached the receiver; the worker stamps the due time
    after the response, so this due time is a lower bound and "early" (negative) is certain.
    Only consecutive attempts both seen are compared (a duplicate attempt counts once: its
    first arrival).
    """
    values: list[float] = []
    early = 0
    for seen in arrivals.values():
        first: dict[int, float] = {}
        for attempt, at in seen:
            if attempt not in first or at < first[attempt]:
                first[attempt] = at
        for attempt, at in first.items():
            previous = first.get(attempt - 1)
            if attempt < 2 or previous is None or attempt - 1 >= len(delays):
                continue
            late = at - (previous + delays[attempt - 1])
            values.append(late)
            if late < 0:
                early += 1
    return Lateness(sorted(values), early)


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points; 0 for fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / sxx


@dataclass(frozen=True)
class LagVerdict:
    flat: bool
    slope: float  # messages per second over the judged window
    last: float
    reason: str


def lag_is_flat(
    samples: Sequence[tuple[float, float]],
    rate: float,
    *,
    slope_fraction: float = 0.05,
    lag_seconds: float = 2.0,
    lag_floor: float = 300.0,
) -> LagVerdict:
    """Is consumer lag flat over a step produced at ``rate`` msg/s?

    ``samples`` are ``(seconds since the step began, lag in messages)``. The first half of the
    step is warm-up; over the second half the lag must not grow faster than ``slope_fraction``
    of the rate, and its last value must stay within ``lag_seconds`` of production (plus
    ``lag_floor`` for commit intervals and in-flight work). Both conditions are needed: a
    bounded but steep lag is still growing, a flat but huge lag was already lost.

    A slope that would add less than ``lag_floor`` over the whole step is not growth: the lag
    is read from committed offsets, so at low rates a commit landing just before or after a
    sample tilts a 2-3 point window by more than 5 % of the rate (a 50 ev/s step was once
    judged "growing" by 6 msg/s, and the run's sustained rate read 25).

    The slope is fitted over at least the last three samples: the second half of a 4 s quick
    step holds two, and a lag climbing 660 -> 1149 -> 1760 -> 1919 over the step read as
    145 msg/s (flat) from its last two, where its last three give 370 msg/s.
    """
    if len(samples) < 3:
        return LagVerdict(False, 0.0, samples[-1][1] if samples else 0.0, "too few samples")
    end = samples[-1][0]
    window = [s for s in samples if s[0] >= end / 2]
    if len(window) < 3:  # two points of a short step are one noisy difference
        window = list(samples[-3:])
    growth = slope(window)
    last = samples[-1][1]
    limit = rate * lag_seconds + lag_floor
    if growth > max(slope_fraction * rate, lag_floor / max(end, 1.0), 1.0):
        return LagVerdict(False, growth, last, f"lag grows {growth:.0f} msg/s")
    if last > limit:
        return LagVerdict(False, growth, last, f"lag {last:.0f} above {limit:.0f}")
    return LagVerdict(True, growth, last, "flat")


def highest_flat_rate(steps: Sequence[tuple[float, bool]]) -> float | None:
    """The highest rate judged flat that is below every rate judged not flat."""
    failed = [rate for rate, flat in steps if not flat]
    ceiling = min(failed) if failed else math.inf
    flat = [rate for rate, ok in steps if ok and rate < ceiling]
    return max(flat) if flat else None


def next_rate(
    steps: Sequence[tuple[float, bool]],
    *,
    factor: float = 2.0,
    refinements: int = 1,
    floor: float = 10.0,
) -> float | None:
    """The next rate to try, or None when done.

    While every step was flat, multiply by ``factor``. While no step was flat yet, divide by
    ``factor`` (not below ``floor``). Once there is a flat rate and a failed one above it,
    bisect between the best flat and the lowest failed rate ``refinements`` times.
    """
    if not steps:
        raise ValueError("start from a first rate")
    failed = [rate for rate, flat in steps if not flat]
    if not failed:
        return steps[-1][0] * factor
    best = highest_flat_rate(steps)
    high = min(failed)
    if best is None:
        lower = round(high / factor)
        return float(lower) if lower >= floor and lower < high else None
    # refinements done: steps taken after the first step that left both a flat and a failed
    bracketed = next(
        i
        for i in range(len(steps))
        if any(ok for _, ok in steps[: i + 1]) and any(not ok for _, ok in steps[: i + 1])
    )
    if len(steps) - bracketed - 1 >= refinements:
        return None
    middle = round((best + high) / 2)
    if middle <= best or middle >= high or any(r == middle for r, _ in steps):
        return None
    return float(middle)


@dataclass(frozen=True)
class Counts:
    expected: int
    received: int  # distinct expected keys that arrived
    lost: int
    duplicates: int  # arrivals beyond the first of the same key
    unexpected: int  # keys that arrived but were never expected


def delivery_counts(expected: Iterable[str], arrived: Iterable[str]) -> Counts:
    """Every expected key must arrive at least once; each extra arrival is a duplicate."""
    wanted = set(expected)
    seen: dict[str, int] = {}
    for key in arrived:
        seen[key] = seen.get(key, 0) + 1
    received = sum(1 for k in seen if k in wanted)
    duplicates = sum(n - 1 for k, n in seen.items() if k in wanted)
    unexpected = sum(1 for k in seen if k not in wanted)
    return Counts(len(wanted), received, len(wanted) - received, duplicates, unexpected)


def cpu_us_per_delivery(cpu_seconds: float, deliveries: int) -> float | None:
    if deliveries <= 0:
        return None
    return cpu_seconds * 1_000_000 / deliveries


def littles_law_rate(in_flight: float, latency_s: float) -> float:
    """Throughput a concurrency-bound system reaches: L = λ·W, so λ = L / W."""
    return in_flight / latency_s


def first_times(pairs: Iterable[tuple[str, float]]) -> dict[str, float]:
    """The earliest time seen for each key (a duplicate arrival never moves it later)."""
    out: dict[str, float] = {}
    for key, at in pairs:
        if key not in out or at < out[key]:
            out[key] = at
    return out


@dataclass(frozen=True)
class Drain:
    count: int  # distinct deliveries that arrived
    first: float | None  # arrival time of the first, seconds
    last: float | None  # arrival time of the last
    seconds: float  # last - first
    per_s: float | None  # deliveries per second from first to last arrival


def drain_rate(first_arrivals: Iterable[float]) -> Drain:
    """Deliveries/s of a backlog drain, from the first to the last arrival at the receiver.

    The first arrival opens the interval, so n arrivals span n - 1 intervals; the rate is
    undefined for fewer than two arrivals or a zero-length span (a 1 ms log resolution makes
    that possible only for tiny backlogs)."""
    times = sorted(first_arrivals)
    if not times:
        return Drain(0, None, None, 0.0, None)
    span = times[-1] - times[0]
    per_s = (len(times) - 1) / span if len(times) > 1 and span > 0 else None
    return Drain(len(times), times[0], times[-1], span, per_s)


@dataclass(frozen=True)
class RecordLag:
    values: list[float]  # seconds, visible - answered, sorted, one per sample seen
    missing: int  # samples answered by the receiver but never seen through the API
    clamped: int  # samples seen before the receiver's logged answer (clock resolution)


def record_lag(answered: Mapping[str, float], visible: Mapping[str, float]) -> RecordLag:
    """Time from the receiver's answer until the attempt was visible through the API.

    ``answered[delivery_id]`` is the receiver's (first) answer time; ``visible[delivery_id]`` when
    a poll of the API first showed the delivery with the attempt. Only answered samples count;
    a negative lag (the receiver logs in whole milliseconds, the poller stamps the response) is
    clamped to 0 and counted, so a systematic skew would show."""
    values: list[float] = []
    missing = clamped = 0
    for key, at in answered.items():
        seen = visible.get(key)
        if seen is None:
            missing += 1
            continue
        lag = seen - at
        if lag < 0:
            clamped += 1
            lag = 0.0
        values.append(lag)
    return RecordLag(sorted(values), missing, clamped)


def open_loop_due(start: float, rate: float, index: int) -> float:
    """When request ``index`` of an open-loop run at ``rate``/s is due (its latency is measured
    from this time, not from when it was actually sent: no coordinated omission)."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    return start + index / rate


def every_nth(rate: float, per_s: float, *, minimum: int = 2) -> int:
    """The sampling step k (every k-th event) that yields about ``per_s`` samples a second at
    ``rate`` events/s; at least ``minimum`` so most events stay on the measured path."""
    if per_s <= 0:
        raise ValueError("per_s must be positive")
    return max(minimum, round(rate / per_s))


def cpu_ms(cpu_us: float | None) -> float | None:
    """µs per delivery as ms per delivery, for tables."""
    return None if cpu_us is None else cpu_us / 1000


def cpu_used(
    before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]]
) -> dict[str, float]:
    """user+sys seconds each role spent between two (utime, stime) snapshots; a role missing
    from either snapshot (not started yet, or exited) is left out rather than guessed."""
    return {
        role: (after[role][0] - before[role][0]) + (after[role][1] - before[role][1])
        for role in after
        if role in before
    }


def cpu_per_delivery(used: Mapping[str, float], deliveries: int) -> dict[str, float | None]:
    """µs of CPU per delivery for each role."""
    return {role: cpu_us_per_delivery(sec, deliveries) for role, sec in used.items()}
