"""The cyclic garbage collector of a long-running role: what start-up built is frozen, and
the young generation is collected less often.

Why: imports, the Faust app, the driver's metadata and the webhook index are ~100,000
objects that live as long as the process, and each full collection walked them all; and at
a thousand deliveries a second CPython's default (a young collection every 700 new
container objects) runs one every few deliveries. Measured on the shipped sender's path
alone (aiohttp to nginx, a worker's imports loaded): the collector took 12.3 µs per request
by default and 0.6 µs tuned (BENCHMARKS.md, "Session 6"). Freezing changes nothing for
reference counting: a frozen object that loses its last reference is still freed at once;
only cycles among frozen objects are never collected.
"""

from __future__ import annotations

import gc

# A young collection once 7,000 more container objects are alive; the older generations
# as rarely (every 20 young, every 100 middle ones).
THRESHOLDS = (7_000, 20, 100)


def settle() -> None:
    """Call once, last in start-up: collect, freeze what is left, raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
