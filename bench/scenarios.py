"""The six scenarios of PERFORMANCE.md and the backlog drain of issue 10, each on its own
pipeline (topic prefix, keyspace, consumer groups), driven by the open-loop producer and judged
from the receivers' arrival logs and the worker's (and recorder's) committed offsets.

A *stepped* scenario runs the producer at rising fixed rates (×2 while the lag stays flat,
then one or two bisections), each step for ``step_seconds``, and waits for the lag to drain
between steps; the sustained rate is the highest rate with flat lag. Latency is then measured
in two more fixed-rate runs at 50 % and 80 % of it. Scenario 1 then measures the record lag
at the sustained rate (``Driver.record_lag``).

Every figure of CPU per delivery is per role: the worker's, and the recorder's (and the
scheduler's) when the pipeline has one, each from ``/proc`` over the same interval.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.deliveries import delivery_id
from bench import api_probe, stats
from bench.pipeline import Hook, Pipeline
from bench.producer import OpenLoopProducer, Run
from bench.receivers import Arrival, Nginx, Receiver, Scripted
from bench.stack import server_cpu

Say = Callable[[str], None]


@dataclass
class Plan:
    quick: bool
    step_seconds: float
    latency_seconds: float
    drain_timeout: float
    refinements: int
    deadline: float  # monotonic time by which every scenario must have ended
    profile: bool = False
    profile_seconds: float = 10.0
    results_dir: Path = Path("bench/results")
    run_name: str = "run"
    drain_events: int = 20_000
    backlog_timeout: float = 240.0  # for the whole backlog to arrive
    api_rate: float = 200.0  # open-loop GETs of a deliveries page per second
    api_seconds: float = 5.0  # per variant (no filter, status=success, status=failed)
    record_lag_seconds: float = 8.0

    def left(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class Step:
    rate: float  # events/s produced
    seconds: float
    flat: bool
    reason: str
    lag_samples: list[tuple[float, int]]
    deliveries: int
    delivered_per_s: float
    cpu_s: float
    cpu_sys_s: float
    cpu_us_per_delivery: float | None
    producer_behind_max_s: float
    drained: bool
    aborted: bool
    cpu_roles_us_per_delivery: dict[str, float | None] = field(default_factory=dict)
    record_lag_samples: list[tuple[float, int]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "seconds": self.seconds,
            "flat": self.flat,
            "reason": self.reason,
            "deliveries": self.deliveries,
            "delivered_per_s": round(self.delivered_per_s, 1),
            "cpu_us_per_delivery": _r(self.cpu_us_per_delivery),
            "cpu_s": round(self.cpu_s, 2),
            "cpu_sys_share": _r(self.cpu_sys_s / self.cpu_s if self.cpu_s else None, 3),
            "producer_behind_max_s": round(self.producer_behind_max_s, 3),
            "drained": self.drained,
            "aborted": self.aborted,
            "cpu_roles_us_per_delivery": {
                k: _r(v) for k, v in self.cpu_roles_us_per_delivery.items()
            },
            "lag": [(round(t, 1), lag) for t, lag in self.lag_samples],
            "record_lag_messages": [(round(t, 1), lag) for t, lag in self.record_lag_samples],
        }


def _r(x: float | None, digits: int = 1) -> float | None:
    return None if x is None else round(x, digits)


cpu_used, cpu_per_delivery = stats.cpu_used, stats.cpu_per_delivery


@dataclass
class Driver:
    """Runs one scenario's pipeline: warm-up, steps, fixed-rate runs, accounting."""

    pipe: Pipeline
    producer: OpenLoopProducer
    receivers: Sequence[Receiver]
    plan: Plan
    say: Say
    tag: str
    fanout: int = 1  # deliveries per event of the main type
    runs: list[Run] = field(default_factory=list)
    type_of: Callable[[int], str] | None = None
    record_samples: list[tuple[float, int]] = field(default_factory=list)
    _labels: int = 0

    # -- arrivals ---------------------------------------------------------------------------

    def arrivals(self) -> list[Arrival]:
        out: list[Arrival] = []
        for r in self.receivers:
            out.extend(r.arrivals())
        return out

    def flush(self) -> None:
        for r in self.receivers:
            r.flush()  # type: ignore[attr-defined]

    def label(self, kind: str) -> str:
        self._labels += 1
        return f"{self.tag}{kind}{self._labels}"

    def matching(self, event_type: str) -> list[str]:
        return [w.id for w in self.pipe.webhooks if event_type in w.events]

    def expected(self, runs: Sequence[Run]) -> dict[str, tuple[float, str]]:
        """delivery id -> (event's intended send time, webhook id), for the given runs."""
        out: dict[str, tuple[float, str]] = {}
        cache: dict[str, list[str]] = {}
        for run in runs:
            for event_id, (sent_at, kind) in run.sent.items():
                hooks = cache.setdefault(kind, self.matching(kind))
                for hook in hooks:
                    out[delivery_id(event_id, hook)] = (sent_at, hook)
        return out

    # -- waiting ----------------------------------------------------------------------------

    def wait_drained(self, timeout: float) -> bool:
        """Lag 0 twice in a row (the worker commits about every second), the recorder's too."""
        deadline = time.monotonic() + timeout
        zeros = 0
        while time.monotonic() < deadline:
            self._check_alive()
            idle = self.pipe.lag() == 0 and not self.pipe.record_lag()
            zeros = zeros + 1 if idle else 0
            if zeros >= 2:
                return True
            time.sleep(0.5)
        return False

    def settle(self, timeout: float = 30.0, busy: float = 0.3) -> float | None:
        """Wait until the pipeline's roles and both servers together use under ``busy`` of a
        core over one second; return the seconds waited, or None if they never did.

        A latency run started right after an overloaded step measured that step's aftermath
        as well as its own rate: Cassandra flushing and compacting the backlog's rows, the
        recorder catching up (one run read p99 79 ms at 600 ev/s where ten runs on a quiet
        pipeline read 31-64; BENCHMARKS.md, session 11). Idle, the roles and servers use
        about a tenth of a core between them (polls, heartbeats, the JVMs' housekeeping)."""
        began = time.monotonic()
        before, at = self._busy_cpu(), began
        while time.monotonic() - began < timeout:
            time.sleep(1.0)
            self._check_alive()
            now, t = self._busy_cpu(), time.monotonic()
            if (now - before) / (t - at) < busy:
                return round(t - began, 1)
            before, at = now, t
        return None

    def _busy_cpu(self) -> float:
        used = self.pipe.cpu_roles() | server_cpu(self.pipe.settings)
        return sum(user + system for user, system in used.values())

    def wait_arrived(self, runs: Sequence[Run], timeout: float) -> bool:
        wanted = set(self.expected(runs))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            got = {a.delivery_id for a in self.arrivals()}
            if wanted <= got:
                return True
            time.sleep(0.5)
        return False

    def _check_alive(self) -> None:
        if not self.pipe.alive():
            raise RuntimeError(f"the worker of {self.tag} died: {self.pipe.failure()}")

    # -- producing --------------------------------------------------------------------------

    def warm_up(self) -> None:
        run = self.producer.start(40, 0.5, self.label("w"))
        self.producer.wait()
        self.runs.append(run)
        if not self.wait_arrived([run], 120):
            raise RuntimeError(f"{self.tag}: warm-up events never arrived at the receiver")

    def fixed(
        self, rate: float, seconds: float, kind: str = "f"
    ) -> tuple[Run, list[tuple[float, int]]]:
        """One fixed-rate run; returns it and the lag samples taken once a second (the
        recorder's lag samples, when there is a recorder, go to ``self.record_samples``)."""
        run = self.producer.start(rate, seconds, self.label(kind), self.type_of)
        self.runs.append(run)
        began = time.monotonic()
        samples: list[tuple[float, int]] = []
        self.record_samples = []
        thread_alive = True
        while thread_alive:
            time.sleep(1.0)
            self._check_alive()
            samples.append((time.monotonic() - began, self.pipe.lag()))
            records = self.pipe.record_lag()
            if records is not None:
                self.record_samples.append((samples[-1][0], records))
            elapsed = time.monotonic() - began
            limit = rate * (1 + self.fanout) * 4 + 2000
            if elapsed > seconds / 2 and samples[-1][1] > limit:
                self.producer.abort()  # hopelessly behind: stop adding backlog
            thread_alive = self.producer.running()
        self.producer.wait()
        return run, samples

    def step(self, rate: float) -> Step:
        roles0 = self.pipe.cpu_roles()
        user0, sys0 = roles0["worker"]
        run, samples = self.fixed(rate, self.plan.step_seconds, "s")
        record_samples = self.record_samples
        verdict = stats.lag_is_flat(samples, rate * (1 + self.fanout))
        drained = self.wait_drained(self.plan.drain_timeout)
        roles1 = self.pipe.cpu_roles()
        user1, sys1 = roles1["worker"]
        cpu, cpu_sys = (user1 - user0) + (sys1 - sys0), sys1 - sys0
        self.flush()
        delivered = self.delivered(run)
        produced_for = max(run.ended_at - run.started_at, 1e-9)
        step = Step(
            rate=rate,
            seconds=self.plan.step_seconds,
            flat=verdict.flat and not run.aborted,
            reason=verdict.reason if not run.aborted else "aborted: lag far behind",
            lag_samples=samples,
            deliveries=delivered,
            delivered_per_s=delivered / produced_for,
            cpu_s=cpu,
            cpu_sys_s=cpu_sys,
            cpu_us_per_delivery=stats.cpu_us_per_delivery(cpu, delivered),
            producer_behind_max_s=run.behind_max,
            drained=drained,
            aborted=run.aborted,
            cpu_roles_us_per_delivery=cpu_per_delivery(cpu_used(roles0, roles1), delivered),
            record_lag_samples=record_samples,
        )
        recorder = step.cpu_roles_us_per_delivery.get("recorder")
        self.say(
            f"  {self.tag} step {rate:>7.0f} ev/s: {'flat' if step.flat else 'NOT flat'} "
            f"({step.reason}), {step.deliveries} deliveries, "
            f"cpu {step.cpu_us_per_delivery or 0:.0f} µs/delivery "
            f"({100 * cpu_sys / cpu if cpu else 0:.0f} % sys)"
            + (f", recorder {recorder:.0f} µs/delivery" if recorder is not None else "")
        )
        return step

    def delivered(self, run: Run) -> int:
        wanted = self.expected([run])
        return len({a.delivery_id for a in self.arrivals() if a.delivery_id in wanted})

    def stepped(self, start: float, floor: float = 2.0) -> tuple[list[Step], float | None]:
        steps: list[Step] = []
        rate: float | None = start
        budget_per_step = self.plan.step_seconds + self.plan.drain_timeout + 5
        while rate is not None and self.plan.left() > budget_per_step + 60:
            steps.append(self.step(rate))
            # left-over backlog would falsify the next step: give it one more chance
            if not steps[-1].drained and not self.wait_drained(self.plan.drain_timeout):
                self.say(f"  {self.tag}: backlog does not drain; stopping the steps")
                break
            rate = stats.next_rate(
                [(s.rate, s.flat) for s in steps],
                refinements=self.plan.refinements,
                floor=floor,
            )
        sustained = stats.highest_flat_rate([(s.rate, s.flat) for s in steps])
        return steps, sustained

    def latency(
        self, rate: float, seconds: float, only_hook: str | None = None, *, quiet: bool = False
    ) -> dict[str, Any]:
        """A fixed-rate run; event → first-attempt latency of its deliveries (ms). ``quiet``:
        start once the pipeline has settled (``settle``), and say after how long."""
        settled = self.settle() if quiet else None
        roles0 = self.pipe.cpu_roles()
        run, samples = self.fixed(rate, seconds, "l")
        self.wait_drained(self.plan.drain_timeout)
        used = cpu_used(roles0, self.pipe.cpu_roles())
        self.flush()
        wanted = self.expected([run])
        first: dict[str, float] = {}
        for a in self.arrivals():
            if a.attempt == 1 and a.delivery_id in wanted:
                first[a.delivery_id] = min(a.at, first.get(a.delivery_id, a.at))
        values = [
            at - wanted[d][0]
            for d, at in first.items()
            if only_hook is None or wanted[d][1] == only_hook
        ]
        summary = stats.latency_summary_ms(values)
        delivered = len(first)
        result = {
            "rate": rate,
            "seconds": seconds,
            "latency_ms": summary,
            "deliveries": delivered,
            "expected": len(wanted)
            if only_hook is None
            else sum(1 for _, h in wanted.values() if h == only_hook),
            "cpu_us_per_delivery": _r(stats.cpu_us_per_delivery(used["worker"], delivered)),
            "cpu_roles_us_per_delivery": {
                k: _r(v) for k, v in cpu_per_delivery(used, delivered).items()
            },
            "producer_behind_max_s": round(run.behind_max, 3),
            "lag_max": max((lag for _, lag in samples), default=0),
        }
        if quiet:
            result["settled_after_s"] = settled
        self.say(
            f"  {self.tag} latency at {rate:.0f} ev/s: p50 {summary.get('p50', 0):.1f} ms, "
            f"p95 {summary.get('p95', 0):.1f} ms, p99 {summary.get('p99', 0):.1f} ms "
            f"({delivered} deliveries)"
        )
        return result

    def correctness(self, only_hook: str | None = None) -> dict[str, Any]:
        """Lost (expected, never arrived) and duplicate (same attempt arrived again)."""
        self.flush()
        wanted = self.expected(self.runs)
        if only_hook is not None:
            wanted = {d: v for d, v in wanted.items() if v[1] == only_hook}
        arrivals = [a for a in self.arrivals() if a.delivery_id in wanted]
        first_attempts = [a.delivery_id for a in arrivals if a.attempt == 1]
        counts = stats.delivery_counts(wanted, first_attempts)
        per_attempt: dict[tuple[str, int], int] = defaultdict(int)
        for a in arrivals:
            per_attempt[(a.delivery_id, a.attempt)] += 1
        duplicates = sum(n - 1 for n in per_attempt.values())
        return {
            "expected": counts.expected,
            "arrived": counts.received,
            "lost": counts.lost,
            "duplicates": duplicates,
        }

    # -- the delivery log through the API ---------------------------------------------------

    def record_lag(self, rate: float, seconds: float, probe_hook: str) -> dict[str, Any]:
        """Receiver's answer → attempt visible through ``GET /v1/webhooks/{id}/deliveries``.

        A fixed-rate run at ``rate`` in which every k-th event (about 25 a second) has a type
        only the probe webhook subscribes to, so every event still matches one webhook and the
        probe's log stays small enough for one page (1,000) per poll."""
        from tests.support import API_KEY

        k = stats.every_nth(rate, 25.0)
        self.type_of = lambda i: "user.updated" if i % k == k - 1 else "user.created"
        base = f"http://127.0.0.1:{self.pipe.settings.api.port}"
        poller = api_probe.RecordLagPoller(base, API_KEY, probe_hook, interval=0.1).start()
        roles0 = self.pipe.cpu_roles()
        try:
            run, samples = self.fixed(rate, seconds, "g")
            record_samples = self.record_samples
            self.wait_drained(self.plan.drain_timeout)
            used = cpu_used(roles0, self.pipe.cpu_roles())
            expected = self.expected([run])
            wanted = {d for d, (_, hook) in expected.items() if hook == probe_hook}
            self.wait_arrived([run], 10)
            deadline = time.monotonic() + 15  # a record later than this counts as missing
            while time.monotonic() < deadline and not wanted <= poller.seen.keys():
                time.sleep(0.2)
        finally:
            poller.stop()
            self.type_of = None
        self.flush()
        answered = stats.first_times(
            (a.delivery_id, a.at)
            for a in self.arrivals()
            if a.attempt == 1 and a.delivery_id in wanted
        )
        lag = stats.record_lag(answered, poller.seen)
        summary = stats.latency_summary_ms(lag.values)
        delivered = len({a.delivery_id for a in self.arrivals() if a.delivery_id in expected})
        self.say(
            f"  {self.tag} record lag at {rate:.0f} ev/s: p50 {summary.get('p50', 0):.0f} ms, "
            f"p99 {summary.get('p99', 0):.0f} ms over {len(lag.values)} sampled deliveries "
            f"(1 in {k}), {lag.missing} never visible"
        )
        return {
            "rate": rate,
            "seconds": seconds,
            "sample_every": k,
            "samples": len(wanted),
            "answered": len(answered),
            "record_lag_ms": summary,
            "missing": lag.missing,
            "clamped_to_zero": lag.clamped,
            "poller": poller.summary(),
            "deliveries": delivered,
            "cpu_roles_us_per_delivery": {
                r: _r(v) for r, v in cpu_per_delivery(used, delivered).items()
            },
            "lag_max": max((lag for _, lag in samples), default=0),
            "record_lag_messages_max": max((n for _, n in record_samples), default=None),
        }


def _scenario_result(
    driver: Driver, steps: list[Step], sustained: float | None, extra: dict[str, Any]
) -> dict[str, Any]:
    best = next((s for s in steps if s.rate == sustained), None)
    return {
        "pipeline": driver.pipe.info(),
        "steps": [s.summary() for s in steps],
        "sustained_events_per_s": sustained,
        "sustained_deliveries_per_s": None if sustained is None else sustained * driver.fanout,
        "measured_deliveries_per_s_at_sustained": _r(best.delivered_per_s) if best else None,
        "cpu_us_per_delivery": _r(best.cpu_us_per_delivery) if best else None,
        "recorder_cpu_us_per_delivery": _r(best.cpu_roles_us_per_delivery.get("recorder"))
        if best
        else None,
        "worker_rss_mib": round(driver.pipe.rss(), 1),
        "rss_mib": driver.pipe.rss_roles(),
        **extra,
    }


class Scenarios:
    """Holds the run-wide pieces (stack settings, nginx, logs) and runs each scenario."""

    def __init__(self, stack: Any, nginx: Nginx, plan: Plan, say: Say, log_dir: Path) -> None:
        self.stack, self.nginx, self.plan, self.say, self.log_dir = stack, nginx, plan, say, log_dir
        self.results: dict[str, Any] = {}
        self.profile: dict[str, Any] | None = None

    def _run(
        self,
        key: str,
        hooks: list[Hook],
        receivers: list[Receiver],
        body: Callable[[Driver], dict[str, Any]],
        *,
        size: int = 1024,
        scheduler: bool = False,
        api: bool = False,
        fanout: int = 1,
        needs: float = 90,
    ) -> None:
        if self.plan.left() < needs:
            self.results[key] = {"skipped": f"not enough time left ({self.plan.left():.0f} s)"}
            self.say(f"{key}: skipped, not enough time left")
            return
        self.say(f"{key}: starting")
        began = time.monotonic()
        pipe = Pipeline(
            self.stack,
            key,
            hooks,
            scheduler=scheduler,
            api=api,
            log_dir=self.log_dir,
        )
        producer: OpenLoopProducer | None = None
        try:
            pipe.start(self.say)
            producer = OpenLoopProducer(
                self.stack.kafka.bootstrap_servers, pipe.settings.kafka.events_topic, size=size
            )
            driver = Driver(pipe, producer, receivers, self.plan, self.say, key, fanout=fanout)
            driver.warm_up()
            result = body(driver)
            result["seconds"] = round(time.monotonic() - began, 1)
            self.results[key] = result
        except Exception as exc:
            self.say(f"{key}: FAILED: {exc}")
            self.results[key] = {"error": str(exc)[-3000:], "pipeline": pipe.info()}
        finally:
            if producer is not None:
                producer.abort()
                producer.wait()
            pipe.stop()

    # -- 1 ----------------------------------------------------------------------------------

    def s1_fast(self) -> None:
        # the probe webhook gets only the record-lag run's sampled events (``user.updated``)
        hooks = [Hook(self.nginx.url("/s1")), Hook(self.nginx.url("/s1/probe"), ("user.updated",))]

        def body(d: Driver) -> dict[str, Any]:
            steps, sustained = d.stepped(start=50)
            base = sustained or steps[0].rate / 2
            lat50 = d.latency(base * 0.5, self.plan.latency_seconds, quiet=True)
            lat80 = d.latency(base * 0.8, self.plan.latency_seconds)
            lag: dict[str, Any] = {"skipped": "not enough time left"}
            if self.plan.left() > self.plan.record_lag_seconds + 60:
                lag = d.record_lag(base, self.plan.record_lag_seconds, d.pipe.webhooks[1].id)
            if self.plan.profile and self.plan.left() > 45:
                self.profile = self._profile(d, base)
            d.wait_drained(self.plan.drain_timeout)
            return _scenario_result(
                d, steps, sustained,
                {"latency_50": lat50, "latency_80": lat80, "record_lag": lag,
                 "correctness": d.correctness()},
            )  # fmt: skip

        self._run("s1_fast", hooks, [self.nginx], body, api=True)

    def _profile(self, d: Driver, rate: float) -> dict[str, Any]:
        from bench import profiler

        out = self.plan.results_dir / f"{self.plan.run_name}-profile"
        run = d.producer.start(rate, self.plan.profile_seconds + 3, d.label("p"), d.type_of)
        d.runs.append(run)
        time.sleep(1.5)
        found = profiler.record(d.pipe.worker_pid, self.plan.profile_seconds, out)
        d.producer.wait()
        d.wait_drained(self.plan.drain_timeout)
        found["rate"] = rate
        self.say(f"  profile: {found.get('samples')} samples -> {found.get('svg')}")
        return found

    # -- 2 ----------------------------------------------------------------------------------

    def s2_fanout(self) -> None:
        hooks = [Hook(self.nginx.url(f"/s2/h{i}")) for i in range(10)]

        def body(d: Driver) -> dict[str, Any]:
            steps, sustained = d.stepped(start=10, floor=1)
            base = sustained or steps[0].rate / 2
            lat50 = d.latency(base * 0.5, self.plan.latency_seconds, quiet=True)
            d.wait_drained(self.plan.drain_timeout)
            return _scenario_result(
                d, steps, sustained, {"latency_50": lat50, "correctness": d.correctness()}
            )

        self._run("s2_fanout", hooks, [self.nginx], body, fanout=10)

    # -- 3 ----------------------------------------------------------------------------------

    def s3_slow(self) -> None:
        slow = Scripted("slow", latency=0.05).start()
        hooks = [Hook(slow.url("/s3"))]

        def body(d: Driver) -> dict[str, Any]:
            steps, sustained = d.stepped(start=25)
            base = sustained or steps[0].rate / 2
            lat50 = d.latency(base * 0.5, self.plan.latency_seconds, quiet=True)
            lat80 = d.latency(base * 0.8, self.plan.latency_seconds)
            d.wait_drained(self.plan.drain_timeout)
            limit = d.pipe.settings.delivery.per_webhook_concurrency
            predicted = stats.littles_law_rate(limit, 0.05)
            return _scenario_result(
                d,
                steps,
                sustained,
                {
                    "latency_50": lat50,
                    "latency_80": lat80,
                    "correctness": d.correctness(),
                    "littles_law": {
                        "in_flight_limit": limit,
                        "receiver_latency_s": 0.05,
                        "predicted_max_per_s": predicted,
                        "sustained_over_predicted": _r(stats.ratio(sustained, predicted), 3),
                    },
                },
            )

        try:
            self._run("s3_slow", hooks, [slow], body)
        finally:
            slow.stop()

    # -- 4 ----------------------------------------------------------------------------------

    def s4_isolation(self, s1_sustained: float | None) -> None:
        hung = Scripted("hung").start()
        hooks = [Hook(self.nginx.url("/s4/fast")), Hook(hung.url("/s4/hung"), ("user.deleted",))]
        rate = (s1_sustained or 40) * 0.5

        def body(d: Driver) -> dict[str, Any]:
            d.type_of = lambda i: "user.deleted" if i % 100 == 99 else "user.created"
            fast = d.pipe.webhooks[0].id
            seconds = self.plan.latency_seconds * 1.5
            roles0 = d.pipe.cpu_roles()
            run, samples = d.fixed(rate, seconds, "i")
            d.wait_arrived([run], self.plan.drain_timeout)  # only fast ones can all arrive
            used = cpu_used(roles0, d.pipe.cpu_roles())
            d.flush()
            wanted = {k: v for k, v in d.expected([run]).items() if v[1] == fast}
            first: dict[str, float] = {}
            for a in d.arrivals():
                if a.attempt == 1 and a.delivery_id in wanted:
                    first[a.delivery_id] = min(a.at, first.get(a.delivery_id, a.at))
            summary = stats.latency_summary_ms(at - wanted[k][0] for k, at in first.items())
            hung_seen = len({a.delivery_id for a in hung.arrivals()})
            # every attempt that reached a receiver (the hung ones cost a deadline each)
            cpu = cpu_per_delivery(used, len(first) + hung_seen)
            self.say(
                f"  s4 fast path at {rate:.0f} ev/s with 1 % hung: p99 {summary.get('p99', 0):.1f}"
                f" ms; hung receiver saw {hung_seen} requests"
            )
            return {
                "pipeline": d.pipe.info(),
                "rate": rate,
                "seconds": seconds,
                "fast_latency_ms": summary,
                "hung_requests_seen": hung_seen,
                "lag": [(round(t, 1), lag) for t, lag in samples],
                "correctness_fast_path": d.correctness(only_hook=fast),
                "cpu_us_per_delivery": _r(cpu.get("worker")),
                "recorder_cpu_us_per_delivery": _r(cpu.get("recorder")),
                "cpu_roles_us_per_delivery": {k: _r(v) for k, v in cpu.items()},
                "worker_rss_mib": round(d.pipe.rss(), 1),
                "rss_mib": d.pipe.rss_roles(),
            }

        try:
            self._run("s4_isolation", hooks, [self.nginx, hung], body)
        finally:
            hung.stop()

    # -- 5 ----------------------------------------------------------------------------------

    def s5_retries(self, s1_sustained: float | None) -> None:
        failing = Scripted("failing", fail=0.2).start()
        hooks = [Hook(failing.url("/s5"))]
        rate = min((s1_sustained or 40) * 0.4, 250.0)

        def body(d: Driver) -> dict[str, Any]:
            delays = [x.total_seconds() for x in d.pipe.settings.retry_schedule]
            attempts = len(delays)
            roles0 = d.pipe.cpu_roles()
            run, samples = d.fixed(rate, self.plan.latency_seconds * 2, "r")
            wanted = d.expected([run])
            deadline = time.monotonic() + sum(delays) + 25
            while time.monotonic() < deadline:  # until every delivery succeeded or gave up
                by: dict[str, list[Arrival]] = defaultdict(list)
                for a in failing.arrivals():
                    if a.delivery_id in wanted:
                        by[a.delivery_id].append(a)
                done = sum(
                    1
                    for seen in by.values()
                    if any(a.status < 300 for a in seen) or len(seen) >= attempts
                )
                if done >= len(wanted):
                    break
                time.sleep(1.0)
            used = cpu_used(roles0, d.pipe.cpu_roles())
            failing.flush()
            by = defaultdict(list)
            for a in failing.arrivals():
                if a.delivery_id in wanted:
                    by[a.delivery_id].append(a)
            late = stats.retry_lateness(
                {k: [(a.attempt, a.at) for a in v] for k, v in by.items()}, delays
            )
            succeeded = sum(1 for v in by.values() if any(a.status < 300 for a in v))
            exhausted = sum(
                1 for v in by.values()
                if not any(a.status < 300 for a in v) and len({a.attempt for a in v}) >= attempts
            )  # fmt: skip
            unfinished = len(wanted) - succeeded - exhausted
            # per attempt: here a delivery is 1 to 5 requests, and each one is work
            cpu = cpu_per_delivery(used, sum(len(v) for v in by.values()))
            summary = stats.percentiles(late.values, (50, 99))
            limit = min(stats.retry_lateness_limit(x) for x in delays[1:])
            self.say(
                f"  s5 retries at {rate:.0f} ev/s: {len(late.values)} retries, lateness p50 "
                f"{summary.get('p50', 0) * 1000:.0f} ms, p99 {summary.get('p99', 0) * 1000:.0f}"
                f" ms, max {summary.get('max', 0) * 1000:.0f} ms, early {late.early}"
            )
            return {
                "pipeline": d.pipe.info(),
                "rate": rate,
                "seconds": self.plan.latency_seconds * 2,
                "retries": len(late.values),
                "lateness_s": {k: round(v, 4) for k, v in summary.items()},
                "lateness_min_s": round(late.values[0], 4) if late.values else None,
                "lateness_limit_s": limit,
                "early_fires": late.early,
                "deliveries": len(wanted),
                "succeeded": succeeded,
                "exhausted_after_5_failures": exhausted,
                "lost": unfinished,
                "duplicates": d.correctness()["duplicates"],
                "lag": [(round(t, 1), lag) for t, lag in samples],
                "cpu_us_per_attempt": _r(cpu.get("worker")),
                "recorder_cpu_us_per_attempt": _r(cpu.get("recorder")),
                "cpu_roles_us_per_attempt": {k: _r(v) for k, v in cpu.items()},
                "worker_rss_mib": round(d.pipe.rss(), 1),
                "rss_mib": d.pipe.rss_roles(),
            }

        try:
            self._run("s5_retries", hooks, [failing], body, scheduler=True)
        finally:
            failing.stop()

    # -- 6 ----------------------------------------------------------------------------------

    def s6_payload(self, s1_sustained: float | None, kib: int) -> None:
        # 256 KB is cut to the largest event the worker accepts (event_max_bytes = 262144).
        size = kib * 1024 if kib < 256 else 262144 - 1024
        hooks = [Hook(self.nginx.url(f"/s6/{kib}k"))]
        start = max(2.0, round((s1_sustained or 40) / (2 if kib <= 16 else 8)))

        def body(d: Driver) -> dict[str, Any]:
            steps, sustained = d.stepped(start=start, floor=1)
            base = sustained or steps[0].rate / 2
            lat50 = d.latency(base * 0.5, self.plan.latency_seconds)
            d.wait_drained(self.plan.drain_timeout)
            return _scenario_result(
                d, steps, sustained,
                {"payload_bytes": size, "latency_50": lat50, "correctness": d.correctness()},
            )  # fmt: skip

        self._run(f"s6_payload_{kib}k", hooks, [self.nginx], body, size=size)

    # -- 7: backlog drain, then the API's pages ---------------------------------------------

    def s7_drain(self) -> None:
        """``drain_events`` 1 KB events (each matching 1 webhook at nginx) already on the events
        topic before the worker starts; deliveries/s from the first to the last arrival at the
        receiver, CPU per delivery per role over the drain, lost and duplicates; then the delivery
        log through the API (every record visible?) and the API's page latency against that
        webhook's thousands of deliveries, open loop at ``api_rate``."""
        key = "s7_drain"
        n = self.plan.drain_events
        needs = 150.0
        if self.plan.left() < needs:
            self.results[key] = {"skipped": f"not enough time left ({self.plan.left():.0f} s)"}
            self.say(f"{key}: skipped, not enough time left")
            return
        self.say(f"{key}: starting ({n} events on the topic before the worker starts)")
        began = time.monotonic()
        hooks = [Hook(self.nginx.url("/s7"))]
        pipe = Pipeline(self.stack, key, hooks, api=True, log_dir=self.log_dir)
        producer: OpenLoopProducer | None = None
        try:
            pipe.start(self.say, roles=False)
            producer = OpenLoopProducer(
                self.stack.kafka.bootstrap_servers, pipe.settings.kafka.events_topic
            )
            run = producer.start(n / 2.0, 2.0, "d")  # n events, as fast as a 2 s schedule
            producer.wait()
            if len(run.sent) != n:
                raise RuntimeError(f"produced {len(run.sent)} of {n} events")
            d = Driver(pipe, producer, [self.nginx], self.plan, self.say, key)
            d.runs.append(run)
            expected = d.expected([run])
            started = time.monotonic()
            pipe.start_roles()
            pipe.wait_worker_ready(120, poll=0.05)
            ready = time.monotonic()
            roles_ready = pipe.cpu_roles() | server_cpu(self.stack)
            timeout = min(self.plan.backlog_timeout, self.plan.left() - 60)
            arrived = d.wait_arrived([run], timeout)
            all_arrived = time.monotonic()
            roles_arrived = pipe.cpu_roles() | server_cpu(self.stack)
            drained = d.wait_drained(max(10.0, min(60.0, self.plan.left() - 45)))
            caught_up = time.monotonic()
            roles_drained = pipe.cpu_roles() | server_cpu(self.stack)
            d.flush()
            d.wait_arrived([run], 3)  # the flush above lands within a second
            firsts = stats.first_times(
                (a.delivery_id, a.at)
                for a in d.arrivals()
                if a.attempt == 1 and a.delivery_id in expected
            )
            drain = stats.drain_rate(firsts.values())
            correctness = d.correctness()
            delivered = len(firsts)
            # CPU up to the last arrival (the drain) and up to the recorder's catch-up
            cpu_drain = cpu_per_delivery(cpu_used(roles_ready, roles_arrived), delivered)
            cpu_all = cpu_per_delivery(cpu_used(roles_ready, roles_drained), delivered)
            startup = {  # the servers' totals since they started say nothing here
                r: round(u + s, 2)
                for r, (u, s) in roles_ready.items()
                if r not in {"cassandra", "kafka"}
            }
            self.say(
                f"  {key}: {delivered}/{n} arrived in {drain.seconds:.1f} s: "
                f"{drain.per_s or 0:,.0f} deliveries/s, worker "
                f"{(cpu_drain.get('worker') or 0) / 1000:.2f} ms CPU/delivery"
                + (
                    f", recorder {(cpu_all.get('recorder') or 0) / 1000:.2f} ms/delivery"
                    if "recorder" in cpu_all
                    else ""
                )
                + (
                    f", Cassandra {(cpu_all.get('cassandra') or 0) / 1000:.2f} ms/delivery"
                    if "cassandra" in cpu_all
                    else ""
                )
                + f"; lost {correctness['lost']}, dup {correctness['duplicates']}"
            )
            from tests.support import API_KEY

            base = f"http://127.0.0.1:{pipe.settings.api.port}"
            shown = api_probe.visible(base, API_KEY, pipe.webhooks[0].id, timeout=60)
            records_visible = len(shown & expected.keys())
            self.say(f"  {key}: {records_visible}/{n} deliveries visible through the API")
            pages = self._api_pages(pipe, base, API_KEY, pipe.webhooks[0].id)
            self.results[key] = {
                "pipeline": pipe.info(),
                "events": n,
                "payload_bytes": 1024,
                "arrived_all": arrived,
                "drained": drained,
                "deliveries": delivered,
                "drain_seconds": round(drain.seconds, 3),
                "drain_deliveries_per_s": _r(drain.per_s),
                "worker_start_to_ready_s": round(ready - started, 2),
                "ready_to_first_arrival_s": None
                if drain.first is None
                else round(drain.first - (time.time() - (time.monotonic() - ready)), 2),
                "last_arrival_to_caught_up_s": round(caught_up - all_arrived, 2),
                "cpu_us_per_delivery": _r(cpu_drain.get("worker")),
                "recorder_cpu_us_per_delivery": _r(cpu_all.get("recorder")),
                "cpu_roles_us_per_delivery_drain": {k: _r(v) for k, v in cpu_drain.items()},
                "cpu_roles_us_per_delivery_until_caught_up": {k: _r(v) for k, v in cpu_all.items()},
                "startup_cpu_s": startup,
                "correctness": correctness,
                "records_visible": records_visible,
                "records_missing": n - records_visible,
                "api_pages": pages,
                "worker_rss_mib": round(pipe.rss(), 1),
                "rss_mib": pipe.rss_roles(),
                "seconds": round(time.monotonic() - began, 1),
            }
        except Exception as exc:
            self.say(f"{key}: FAILED: {exc}")
            self.results[key] = {"error": str(exc)[-3000:], "pipeline": pipe.info()}
        finally:
            if producer is not None:
                producer.abort()
                producer.wait()
            pipe.stop()

    def _api_pages(
        self, pipe: Pipeline, base: str, api_key: str, webhook_id: str
    ) -> dict[str, Any]:
        """p50/p95/p99 of the first page (default size) at ``api_rate`` req/s, open loop:
        no filter, a status filter every delivery matches, and one that matches none."""
        out: dict[str, Any] = {}
        for name, params in (
            ("all", {}),
            ("status_success", {"status": "success"}),
            ("status_failed", {"status": "failed"}),
        ):
            if self.plan.left() < self.plan.api_seconds + 30:
                out[name] = {"skipped": "not enough time left"}
                continue
            cpu0 = pipe.api_cpu()
            cass0 = sum(server_cpu(self.stack).get("cassandra", (0.0, 0.0)))
            got = api_probe.page_latency(
                base,
                api_key,
                webhook_id,
                rate=self.plan.api_rate,
                seconds=self.plan.api_seconds,
                params=params,
            )
            # the API's own CPU per answered request: is it CPU-bound on this machine?
            got["api_cpu_ms_per_request"] = _r(
                (pipe.api_cpu() - cpu0) * 1000 / max(1, got["completed"]), 2
            )
            # and Cassandra's (the page's reads; its background work is in it too)
            cass1 = sum(server_cpu(self.stack).get("cassandra", (0.0, 0.0)))
            got["cassandra_cpu_ms_per_request"] = _r(
                (cass1 - cass0) * 1000 / max(1, got["completed"]), 2
            )
            out[name] = got
            lat = got.get("latency_ms", {})
            self.say(
                f"  API page {name} at {self.plan.api_rate:.0f} req/s: p50 "
                f"{lat.get('p50', 0):.1f} ms, p99 {lat.get('p99', 0):.1f} ms, "
                f"{got['items_per_page']} items/page, statuses {got['statuses']}"
            )
        return out
