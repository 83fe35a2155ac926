"""``python -m bench.faust_cost [--events N] [--rounds N]``: what reading an event costs on the
match step's Faust path, without matching, Cassandra or HTTP.

N events (1 KB, six partitions) are produced to a topic of their own on the bench stack; then a
fresh interpreter reads them from the beginning, one variant at a time, in alternating rounds:

- ``faust``: a Faust agent iterating its stream (``async for value in stream``), the app
  configured as the worker's (raw serializers, the quiet monitor);
- ``match``: the same agent through the worker's own wrapper (``app.worker.stream.consume``:
  no automatic acks, a task per event, acks in offset order) and the worker's own Faust
  consumer (``MatchTransport``, where the tree has it), the handler doing nothing;
- ``confluent``: a confluent-kafka consumer in a thread handing batches to an asyncio loop
  (the attempt consumer's shape, ``app.worker.attempts``), one call per event on the loop,
  for comparison.

Reported per variant: the reading process's CPU per event from the first event to the last,
and the rate. This is the share of a delivery's worker CPU that Faust costs before any work of
Hookstream's (BENCHMARKS.md, "Session 6: the worker").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

import bench  # noqa: F401  (puts BENCH_APP_DIR first on sys.path before app is imported)

VARIANTS = ("faust", "match", "confluent")
PARTITIONS = 6


def _produce(bootstrap: str, topic: str, events: int) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept: its futures need it alive
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(events):
        body = b'{"id":"evt_%d","type":"user.created","data":{"note":"%s"}}' % (i, b"x" * 900)
        producer.produce(topic, body, key=str(i).encode())
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)


class _Clock:
    """Process CPU and wall time from the first event to the ``events``-th."""

    def __init__(self, events: int) -> None:
        self.events, self.seen = events, 0
        self.cpu0 = self.wall0 = 0.0

    def tick(self, n: int = 1) -> None:
        if self.seen == 0:
            self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        self.seen += n
        if self.seen >= self.events:
            cpu, wall = time.process_time() - self.cpu0, time.perf_counter() - self.wall0
            print(json.dumps({"us_per_event": round(cpu / self.seen * 1e6, 1),
                              "events_per_s": round(self.seen / wall)}), flush=True)  # fmt: skip
            os._exit(0)  # Faust's worker never returns by itself


def _read_faust(bootstrap: str, topic: str, events: int, wrapped: bool) -> None:
    import asyncio

    import faust
    import uvloop

    from app.worker.main import QuietMonitor
    from app.worker.stream import consume

    clock = _Clock(events)
    # Faust keeps a data directory per app id: a temporary one, not the working directory.
    datadir = tempfile.mkdtemp(prefix="hookstream-faustcost-")
    app = faust.App(
        f"faustcost-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}", datadir=datadir,
        key_serializer="raw", value_serializer="raw", web_enabled=False,
        topic_allow_declare=False, topic_disable_leader=True,
        consumer_auto_offset_reset="earliest", stream_wait_empty=True, loghandlers=[],
        monitor=QuietMonitor(),
    )  # fmt: skip
    if wrapped:  # the worker's own consumer too (named so since session 8; older trees')
        from app.worker import stream

        transport = getattr(stream, "MatchTransport", getattr(stream, "SeekBackTransport", None))
        if transport is not None:
            app.transport = transport(app.conf.broker_consumer, app)
    source = app.topic(topic, value_serializer="raw", key_serializer="raw")

    async def nothing(_ctx: Any, _received: Any) -> None:
        clock.tick()

    @app.agent(source, name="read")  # type: ignore[misc,untyped-decorator]
    async def read(stream: Any) -> None:
        if wrapped:
            await consume(stream, None, nothing, limit=64, name="read",  # type: ignore[arg-type]
                          crash=lambda _exc: os._exit(3))  # fmt: skip
        else:
            async for _value in stream:
                clock.tick()

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    faust.Worker(
        app, loglevel="warning", quiet=True, override_logging=False
    ).execute_from_commandline()


def _read_confluent(bootstrap: str, topic: str, events: int) -> None:
    import asyncio

    import uvloop
    from confluent_kafka import Consumer

    clock = _Clock(events)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                             "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50})  # fmt: skip
        consumer.subscribe([topic])

        def poll() -> None:
            while True:
                first = consumer.poll(0.05)
                if first is None:
                    continue
                batch = [first, *consumer.consume(499, 0)]
                loop.call_soon_threadsafe(hand_over, batch)

        def hand_over(batch: list[Any]) -> None:  # one Python call per event, as a handler
            for message in batch:
                if message.error() is None:
                    clock.tick()

        threading.Thread(target=poll, daemon=True).start()
        await asyncio.Event().wait()

    uvloop.run(main())


def run(events: int, rounds: int) -> dict[str, Any]:
    from bench.stack import bench_settings

    bootstrap = bench_settings().kafka.bootstrap_servers
    topic = f"bench-faustcost-{uuid.uuid4().hex[:8]}"
    _produce(bootstrap, topic, events)
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, "-m", "bench.faust_cost", "--read", variant,
                 "--topic", topic, "--events", str(events)],
                check=False, capture_output=True, timeout=300, env=os.environ.copy(),
            )  # fmt: skip
            # Faust's worker may write terminal escapes before the line: take from its "{".
            lines = [x[x.index("{") :] for x in out.stdout.decode().splitlines() if "{" in x]
            results[variant].append(json.loads(lines[-1]) if lines else {"error": out.returncode})
            print(variant, results[variant][-1], flush=True)
    return {"events": events, "topic": topic, "runs": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--read", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.read is None:
        print(json.dumps(run(a.events, a.rounds)))
        return
    from bench.stack import bench_settings

    bootstrap = bench_settings().kafka.bootstrap_servers
    if a.read == "confluent":
        _read_confluent(bootstrap, a.topic, a.events)
    else:
        _read_faust(bootstrap, a.topic, a.events, wrapped=a.read == "match")


if __name__ == "__main__":
    main()
