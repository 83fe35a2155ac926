"""Hookstream's benchmark: ``python -m bench`` (full, < 15 min) or ``python -m bench --quick``.

Every run measures its own ceilings first (raw HTTP clients, Kafka consume, Cassandra insert,
signing) on the same machine and receiver, then drives the real pipeline (``hookstream worker``
and ``scheduler`` subprocesses) with an open-loop producer, and reports the pipeline as ratios
of those ceilings. See BENCHMARKS.md and /work/shared/docs/PERFORMANCE.md.

    machine.py    what machine and library versions the numbers come from
    stats.py      pure arithmetic: percentiles, ratios, lateness, the flat-lag decision
    stack.py      the local stack on the bench's own ports, reused or started
    receivers.py  nginx (fast) and scripted aiohttp receivers (slow, failing, hung)
    producer.py   the open-loop, fixed-rate event producer
    ceilings.py   the ceilings, each in a fresh subprocess
    pipeline.py   one isolated pipeline: webhooks, worker/scheduler, lag and CPU probes
    scenarios.py  the six scenarios of PERFORMANCE.md
    profiler.py   py-spy sampling of the worker and its top costs
    report.py     JSON, markdown and PNG chart
"""
