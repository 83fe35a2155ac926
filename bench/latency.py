"""``python -m bench.latency --rate R [--runs N] [--seconds S] [--name X]``: event → first
attempt latency at one rate, run after run on one warm pipeline, with where it goes.

The bench's own figure (scenario 1's ``latency_50``) is one 8 s run right after the stepped
search has loaded the machine, so its p99 swings two- or threefold from run to run on this
2-core box (BENCHMARKS.md, sessions 9-11). This probe asks the question the target asks (p99
≤ 50 ms at half the sustained rate) of N runs in a row, on scenario 1's pipeline (one worker
process, its recorder, nginx, two webhooks of which only the first gets these events), and
splits every delivery's latency into three legs from the topics' own CreateTimes:

- *produce*: the event's intended send time (the open-loop producer's schedule) → the events
  topic's CreateTime (librdkafka stamps it at ``produce()``): the bench's producer;
- *match*: the event's CreateTime → its first attempt message's CreateTime on the deliveries
  topic: Faust's fetch, the match step and its hand-off;
- *deliver*: that CreateTime → nginx's ``$msec`` of the request: the attempt consumer's fetch,
  the deliver step and the HTTP request.

Each run starts once the roles and servers are quiet (``Driver.settle``). The legs add up to
the total (to the ms resolution of nginx's stamp). On the bench stack's
ports (``bench.stack``; started if it is not up and left up), in a keyspace and topics of its
own, dropped at the end; ``BENCH_APP_DIR`` measures another tree. Results go to
``bench/results/DATE-NAME.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench  # noqa: F401  (puts BENCH_APP_DIR first on sys.path before app is imported)
from bench import machine, stats
from bench.pipeline import Hook, Pipeline
from bench.producer import OpenLoopProducer
from bench.receivers import Nginx
from bench.scenarios import Driver, Plan
from bench.stack import BenchStack
from tests.support import read_topic

RESULTS = Path(__file__).resolve().parent / "results"
LEGS = ("produce", "match", "deliver", "total")


def say(text: str) -> None:
    print(time.strftime("[%H:%M:%S]"), text, flush=True)


def legs(driver: Driver, pipe: Pipeline, runs: list[Any]) -> dict[str, dict[str, float]]:
    """The three legs (and the total) of every first attempt of ``runs``, summarised in ms."""
    import orjson

    from app.deliveries import AttemptMessage

    event_at = {
        orjson.loads(m.value())["id"]: m.timestamp()[1] / 1000
        for m in read_topic(pipe.settings, pipe.settings.kafka.events_topic, timeout=120)
    }
    attempt_at: dict[str, tuple[str, float]] = {}
    for m in read_topic(pipe.settings, pipe.topics.deliveries, timeout=120):
        a = AttemptMessage.from_kafka(m.value(), m.headers())
        if a.attempt == 1:
            attempt_at[a.delivery_id] = (a.event_id, m.timestamp()[1] / 1000)
    wanted = driver.expected(runs)
    arrived: dict[str, float] = {}
    for a in driver.arrivals():
        if a.attempt == 1 and a.delivery_id in wanted:
            arrived[a.delivery_id] = min(a.at, arrived.get(a.delivery_id, a.at))
    values: dict[str, list[float]] = {leg: [] for leg in LEGS}
    for delivery, at in arrived.items():
        sent = wanted[delivery][0]
        event_id, produced = attempt_at.get(delivery, ("", 0.0))
        created = event_at.get(event_id)
        if created is None:
            continue
        values["produce"].append(created - sent)
        values["match"].append(produced - created)
        values["deliver"].append(at - produced)
        values["total"].append(at - sent)
    return {leg: stats.latency_summary_ms(v) for leg, v in values.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--rate", type=float, required=True, help="events/s of every run")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each run")
    parser.add_argument("--goal-ms", type=float, default=50.0, help="the p99 target")
    parser.add_argument("--name", default="latency")
    a = parser.parse_args(argv)
    stem = f"{datetime.now(UTC):%Y-%m-%d}-{a.name}"
    log_dir = Path(tempfile.mkdtemp(prefix="hookstream-bench-latency-"))
    stack = BenchStack.up(say)
    nginx = Nginx().start()
    plan = Plan(
        quick=False,
        step_seconds=a.seconds,
        latency_seconds=a.seconds,
        drain_timeout=25.0,
        refinements=0,
        deadline=time.monotonic() + 3600,
        results_dir=RESULTS,
        run_name=stem,
    )
    hooks = [Hook(nginx.url("/s1")), Hook(nginx.url("/s1/probe"), ("user.updated",))]
    pipe = Pipeline(stack.settings, "latency", hooks, scheduler=False, api=False, log_dir=log_dir)
    producer: OpenLoopProducer | None = None
    result: dict[str, Any] = {
        "name": a.name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine.describe(),
        "rate": a.rate,
        "seconds": a.seconds,
        "goal_ms": a.goal_ms,
    }
    try:
        pipe.start(say)
        result["pipeline"] = pipe.info()
        producer = OpenLoopProducer(
            stack.settings.kafka.bootstrap_servers, pipe.settings.kafka.events_topic, size=1024
        )
        driver = Driver(pipe, producer, [nginx], plan, say, "lat", fanout=0)
        driver.warm_up()
        warm = len(driver.runs)
        # each run starts on a quiet pipeline
        result["runs"] = [driver.latency(a.rate, a.seconds, quiet=True) for _ in range(a.runs)]
        result["legs"] = legs(driver, pipe, driver.runs[warm:])
        result["correctness"] = driver.correctness()
    finally:
        if producer is not None:
            producer.abort()
            producer.wait()
        pipe.stop()
        nginx.stop()
        result["machine"]["load_average_end"] = machine.load_average()
        p99s = [r["latency_ms"].get("p99") for r in result.get("runs", [])]
        result["p99_ms"] = p99s
        result["runs_within_goal"] = sum(1 for p in p99s if p is not None and p <= a.goal_ms)
        path = RESULTS / f"{stem}.json"
        path.write_text(json.dumps(result, indent=1))
        say(f"p99 per run (ms): {', '.join(f'{p:.1f}' for p in p99s if p is not None)}")
        say(f"within {a.goal_ms:.0f} ms: {result['runs_within_goal']} of {len(p99s)}")
        for leg, summary in result.get("legs", {}).items():
            say(f"{leg:>8}: {summary}")
        say(f"results: {path}")
        from bench.__main__ import cleanup

        info = result.get("pipeline") or {}
        if info:
            cleanup(stack, [info["keyspace"]], [info["topic_prefix"]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
