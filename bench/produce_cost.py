"""``python -m bench.produce_cost [--messages N] [--rounds N]``: what one acknowledged hand-off
to Kafka costs the worker's process (``app.kafka.AsyncProducer.send``, awaited, 256 in flight,
300-byte values, on uvloop as the roles run), in microseconds of this process's CPU
(user + system, librdkafka's own threads included) per message, the Kafka broker's CPU per
message (``/proc`` of the bench stack's server), and the rate. ``--linger-ms`` tries another
``linger.ms`` than the producer's own (fewer, larger requests: less CPU on both sides, more
latency per hand-off).

Each delivery makes three such hand-offs (its attempt message, its event's record, its own
record), so this is the producer's share of the worker's CPU per delivery, apart from Kafka,
HTTP and Faust. ``BENCH_APP_DIR`` measures another tree's producer the same way: alternate
runs of both to compare on a shared machine (the median of the rounds is reported).

On the bench stack's Kafka (``bench.stack``; it must be up: ``python -m bench --keep-stack``
leaves it so), on a topic of its own, deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time
import uuid
from collections.abc import Callable

import bench  # noqa: F401  (puts BENCH_APP_DIR first on sys.path before app is imported)

IN_FLIGHT = 256
VALUE = b"x" * 300


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _round(
    producer: object, topic: str, messages: int, broker: Callable[[], float]
) -> tuple[float, float, float]:
    """(messages/s, µs of this process's CPU and of the broker's per message) for
    ``messages`` awaited sends."""
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> None:
        async with slots:
            await producer.send(topic, VALUE, key=str(i).encode())  # type: ignore[attr-defined]

    cpu, kafka, start = _cpu(), broker(), time.monotonic()
    await asyncio.gather(*(one(i) for i in range(messages)))
    seconds, used, served = time.monotonic() - start, _cpu() - cpu, broker() - kafka
    return messages / seconds, used / messages * 1e6, served / messages * 1e6


async def measure(messages: int, rounds: int, linger_ms: int | None) -> dict[str, object]:
    from confluent_kafka.admin import AdminClient, NewTopic

    from app.kafka import AsyncProducer, client_config
    from bench.stack import bench_settings, server_cpu

    settings = bench_settings()
    topic = f"bench-produce-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(client_config(settings))
    for future in admin.create_topics([NewTopic(topic, 4, 1)]).values():
        future.result(30)

    def broker() -> float:
        user, system = server_cpu(settings).get("kafka", (0.0, 0.0))
        return user + system

    config = {} if linger_ms is None else {"linger.ms": linger_ms}
    producer = AsyncProducer(settings, **config)
    try:
        await _round(producer, topic, 500, broker)  # connections, metadata, idempotence id
        results = [await _round(producer, topic, messages, broker) for _ in range(rounds)]
    finally:
        await asyncio.to_thread(producer.close)
        for future in admin.delete_topics([topic]).values():
            future.result(30)
    return {
        "messages": messages,
        "rounds": rounds,
        "linger_ms": linger_ms,
        "rate_per_s": round(statistics.median(r for r, _, _ in results)),
        "cpu_us_per_message": round(statistics.median(c for _, c, _ in results), 1),
        "broker_cpu_us_per_message": round(statistics.median(b for _, _, b in results), 1),
        "all": [(round(r), round(c, 1), round(b, 1)) for r, c, b in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--linger-ms", type=int, default=None)
    args = parser.parse_args()
    import uvloop

    print(uvloop.run(measure(args.messages, args.rounds, args.linger_ms)))


if __name__ == "__main__":
    main()
