"""Hookstream's benchmark: ``python -m bench`` (full, < 20 min) or ``python -m bench --quick``.

Every run measures its own ceilings first (raw HTTP clients, Kafka consume, Cassandra insert,
signing) on the same machine and receiver, then drives the real pipeline (``hookstream worker``,
``scheduler``, ``api``, and ``recorder`` when the CLI has it, as subprocesses) with an open-loop
producer, and reports the pipeline as ratios of those ceilings. See BENCHMARKS.md and
/work/shared/docs/PERFORMANCE.md.

``BENCH_APP_DIR=DIR`` measures another source tree with this bench: ``app`` and ``tests`` are
imported from DIR (put first on ``sys.path`` here, before anything imports them) and every role
runs from DIR. DIR is e.g. ``git archive <commit> | tar -x -C DIR``: an older commit, measured
on the same machine by the same bench, without touching the working tree.

    machine.py    what machine and library versions the numbers come from
    stats.py      pure arithmetic: percentiles, ratios, lateness, drain rate, record lag
    stack.py      the local stack on the bench's own ports, reused or started
    receivers.py  nginx (fast) and scripted aiohttp receivers (slow, failing, hung)
    producer.py   the open-loop, fixed-rate event producer
    ceilings.py   the ceilings, each in a fresh subprocess
    pipeline.py   one isolated pipeline: webhooks, roles, lag and CPU probes
    api_probe.py  the delivery log through the API: record lag poller, open-loop page client
    scenarios.py  the six scenarios of PERFORMANCE.md and the backlog drain
    profiler.py   py-spy sampling of the worker and its top costs
    report.py     JSON, markdown and PNG chart
    replay.py     ``python -m bench.replay``: filters on the match path, replay throughput
                  and its effect on live latency (issue 14)
    faust_cost.py ``python -m bench.faust_cost``: CPU per event of the match step's Faust
                  path, beside a plain confluent-kafka consumer (issue 10)
"""

import os
import sys

APP_DIR: str | None = (
    os.path.abspath(os.environ["BENCH_APP_DIR"]) if os.environ.get("BENCH_APP_DIR") else None
)
if APP_DIR and APP_DIR not in sys.path:
    sys.path.insert(0, APP_DIR)
