"""``python -m bench.replay [--quick]``: what payload filters cost on the match path, and what
a replay delivers per second and costs live traffic (issue 14).

1. Filter cost, in-process: the match step's per-event work (``WebhookIndex.match`` and the
   filter pass of ``app.worker.match``) for a fan-out of 1, 10 and 50 webhooks on one type,
   without filters and with filters of one and three conditions.
2. Replay against the real pipeline (api, worker, recorder, replayer as processes; the bench
   stack, see ``bench.stack``; in-process aiohttp receivers): a backlog of events matched by
   no webhook, then live traffic at a fixed rate to another webhook, measured three ways —
   alone, during a replay of the backlog at the default rate bound, and during one with the
   bound lifted. Live latency is receive time minus the producer's send time (one clock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import timeit
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import Producer

from app.filters import compile_filter
from app.matching import WebhookIndex
from app.settings import ReplaySettings, Settings
from app.webhooks import Webhook, generate_secret
from bench.stack import BenchStack
from bench.stats import percentile
from tests.support import (
    Receiver,
    Role,
    api_client,
    api_ready,
    eventually,
    pipeline_settings,
    prepare,
)

RESULTS = Path(__file__).resolve().parent / "results"
UNBOUNDED = 1_000_000.0  # attempts/s: no bound in practice


# -- 1. filters on the match path -----------------------------------------------------------

FILTERS: dict[str, dict[str, Any] | None] = {
    "no filter": None,
    "1 condition": {"data.plan": "pro"},
    "3 conditions": {
        "data.plan": {"$in": ["pro", "team"]},
        "data.amount": {"$gte": 10},
        "data.customer.country": "FR",
    },
}
DATA = {"plan": "pro", "amount": 250, "customer": {"country": "FR"}, "seats": 3}


def filter_cost(number: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    rows = []
    for fanout in (1, 10, 50):
        for name, source in FILTERS.items():
            compiled = compile_filter(source) if source is not None else None
            index = WebhookIndex(
                Webhook(f"hook_{i:04}", "https://example.com", ("user.created",),
                        generate_secret(), True, now, now, filter=compiled)
                for i in range(fanout)
            )  # fmt: skip

            def step(index: WebhookIndex = index) -> int:
                webhooks = index.match("user.created")
                kept = tuple(w for w in webhooks if w.filter is None or w.filter.matches(DATA))
                return len(kept)

            assert step() == fanout
            seconds = min(timeit.repeat(step, number=number, repeat=3)) / number
            rows.append({"fanout": fanout, "filter": name, "us_per_event": round(seconds * 1e6, 2)})
    return rows


# -- 2. replay throughput and live latency --------------------------------------------------


class LiveProducer:
    """user.created at a fixed rate, each carrying its send time and a phase tag."""

    def __init__(self, settings: Settings) -> None:
        self._producer = Producer(
            {"bootstrap.servers": settings.kafka.bootstrap_servers, "linger.ms": 1}
        )
        self._topic = settings.kafka.events_topic

    def run(self, rate: float, seconds: float, phase: str) -> threading.Thread:
        def loop() -> None:
            start = time.monotonic()
            n = 0
            while (elapsed := time.monotonic() - start) < seconds:
                due = n / rate
                if due > elapsed:
                    time.sleep(due - elapsed)
                event = {"id": f"evt_live_{uuid.uuid4().hex[:16]}", "type": "user.created",
                         "data": {"sent_at": time.time(), "phase": phase}}  # fmt: skip
                self._producer.produce(self._topic, orjson.dumps(event))
                self._producer.poll(0)
                n += 1
            self._producer.flush(30)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread


def backlog(settings: Settings, count: int, run: str) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "linger.ms": 20})
    for i in range(count):
        event = {
            "id": f"evt_old_{run}_{i:06}",
            "type": "user.updated",
            "data": {"run": run, "n": i},
        }
        while True:
            try:
                producer.produce(settings.kafka.events_topic, orjson.dumps(event))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0


def latencies(receiver: Receiver, phase: str, window: tuple[float, float] | None) -> dict[str, Any]:
    values = []
    for got in receiver.at("/live"):
        data = orjson.loads(got.body)["data"]
        if data.get("phase") != phase:
            continue
        if window is not None and not window[0] <= data["sent_at"] <= window[1]:
            continue
        values.append((got.at - data["sent_at"]) * 1000)
    values.sort()
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 1),
        "p99_ms": round(percentile(values, 99), 1),
        "max_ms": round(values[-1], 1),
    }


async def replay_phase(
    api: httpx.AsyncClient,
    receiver: Receiver,
    webhook_id: str,
    *,
    since: str,
    mode: str,
    live: LiveProducer,
    live_rate: float,
    seconds: float,
    phase: str,
) -> dict[str, Any]:
    before = len(receiver.at("/replay"))
    thread = live.run(live_rate, seconds, phase)
    response = await api.post(
        f"/v1/webhooks/{webhook_id}/replay", json={"since": since, "mode": mode}
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    async def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = (await api.get(f"/v1/replays/{job_id}")).json()
        return job if job["status"] not in ("queued", "running") else None

    job = await eventually(finished, timeout=300, interval=0.5, what="the replay")
    started = datetime.fromisoformat(job["created_at"].replace("Z", "+00:00")).timestamp()
    ended = datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00")).timestamp()
    await eventually(
        lambda: len(receiver.at("/replay")) >= before + job["enqueued"], timeout=120,
        interval=0.5, what="the replayed deliveries",
    )  # fmt: skip
    arrived = [r.at for r in receiver.at("/replay")[before:]]
    await asyncio.to_thread(thread.join)
    await asyncio.sleep(2)  # the last live events' deliveries
    span = max(arrived) - started if arrived else 0.0
    return {
        "status": job["status"],
        "scanned": job["scanned"],
        "enqueued": job["enqueued"],
        "job_seconds": round(ended - started, 2),
        "enqueued_per_s": round(job["enqueued"] / (ended - started), 1)
        if ended > started
        else None,
        "delivered_per_s": round(len(arrived) / span, 1) if span else None,
        "live_during_replay": latencies(receiver, phase, (started, ended)),
    }


async def pipeline_run(quick: bool, say: Any) -> dict[str, Any]:
    stack = BenchStack.up(say)
    count, live_rate, seconds = (3000, 50.0, 10.0) if quick else (20_000, 100.0, 30.0)
    token = uuid.uuid4().hex[:10]
    replay_cfg = ReplaySettings(metrics_port=0, consumer_group=f"b{token}-replayer")
    settings = pipeline_settings(stack.settings, token, replay=replay_cfg)
    unbounded = settings.model_copy(
        update={"replay": replay_cfg.model_copy(update={"rate": UNBOUNDED})}
    )
    prepare(settings)
    receiver = Receiver()
    await receiver.start()
    roles = [Role(name, settings).start() for name in ("api", "worker", "recorder", "replayer")]
    api = api_client(settings)
    results: dict[str, Any] = {"backlog": count, "live_rate": live_rate, "seconds": seconds}
    try:
        await eventually(lambda: api_ready(api), timeout=90, what="the API")
        live_hook = await api.post(
            "/v1/webhooks", json={"url": receiver.url("/live"), "events": ["user.created"]}
        )
        assert live_hook.status_code == 201, live_hook.text
        since = datetime.now(UTC).isoformat()
        run = uuid.uuid4().hex[:8]
        say(f"backlog: {count} events no webhook matches")
        await asyncio.to_thread(backlog, settings, count, run)
        live = LiveProducer(settings)
        say(f"live alone: {live_rate:g}/s for {seconds:g} s")
        await asyncio.to_thread(lambda: live.run(live_rate, seconds, "alone").join())
        await asyncio.sleep(3)
        results["live_alone"] = latencies(receiver, "alone", None)
        replay_hook = {
            "url": receiver.url("/replay"),
            "events": ["user.updated"],
            "filter": {"data.run": run},
        }
        hook = await api.post("/v1/webhooks", json=replay_hook)
        assert hook.status_code == 201, hook.text
        webhook_id = hook.json()["id"]
        say(f"replay at the default bound ({settings.replay.rate:g}/s) with live traffic")
        common = {"since": since, "live": live, "live_rate": live_rate, "seconds": seconds}
        results["replay_bounded"] = await replay_phase(
            api, receiver, webhook_id, mode="missing", phase="bounded", **common
        )
        roles[-1].stop()
        roles[-1] = Role("replayer", unbounded).start()
        say("replay without a bound (mode all) with live traffic")
        results["replay_unbounded"] = await replay_phase(
            api, receiver, webhook_id, mode="all", phase="unbounded", **common
        )
    finally:
        await api.aclose()
        for role in roles:
            await role.astop()
        await receiver.stop()
        stack.down(say)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3,000-event backlog, 10 s phases")
    parser.add_argument("--name", default="replay")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(f"• {text}", flush=True)

    say("filters on the match path")
    result: dict[str, Any] = {"filters": filter_cost(20_000 if args.quick else 100_000)}
    result["pipeline"] = asyncio.run(pipeline_run(args.quick, say))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-{args.name}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    say(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
