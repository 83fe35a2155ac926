"""The delivery log as a user sees it: the real ``hookstream api`` process, over HTTP.

- ``RecordLagPoller``: a background thread that polls ``GET /v1/webhooks/{id}/deliveries``
  every ``interval`` seconds and stamps, for every delivery, when a response first showed it
  with an attempt (``attempts >= 1``). The stamp is taken when the response has been read, so
  the record lag (stamp minus the receiver's answer) is an upper bound, too high by at most one
  interval plus one request. Polls read the newest ``recent`` deliveries (small, cheap pages:
  the API's own CPU is shared with what is measured), and every ``full_every``-th poll reads up
  to 1,000, so a record that appears so late that newer ones pushed it off the small page is
  still seen (with a coarser stamp).
- ``page_latency``: an open-loop client: request i is due at ``start + i / rate`` whatever the
  API does, and its latency is measured from that due time (no coordinated omission).
- ``visible``: pages through a webhook's whole delivery log and returns the ids shown with an
  attempt (the delivery log's own completeness check after a drain).

Every loop here is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench import stats


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@dataclass
class RecordLagPoller:
    base_url: str
    api_key: str
    webhook_id: str
    interval: float = 0.1
    recent: int = 100
    full_every: int = 10
    seen: dict[str, float] = field(default_factory=dict)  # delivery id -> time.time()
    polls: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    poll_seconds: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RecordLagPoller:
        self._thread = threading.Thread(target=self._run, name="record-lag-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)

    def _run(self) -> None:
        url = f"{self.base_url}/v1/webhooks/{self.webhook_id}/deliveries"
        with httpx.Client(headers=_headers(self.api_key), timeout=5.0) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                limit = 1000 if self.polls % self.full_every == self.full_every - 1 else self.recent
                try:
                    response = client.get(url, params={"limit": limit})
                    now = time.time()
                    if response.status_code != 200:
                        self.errors[str(response.status_code)] += 1
                    else:
                        for item in response.json().get("deliveries", []):
                            if item.get("attempts", 0) >= 1 and item["id"] not in self.seen:
                                self.seen[item["id"]] = now
                except httpx.HTTPError as exc:
                    self.errors[type(exc).__name__] += 1
                self.polls += 1
                took = time.monotonic() - began
                self.poll_seconds.append(took)
                self._stop.wait(max(0.0, self.interval - took))

    def summary(self) -> dict[str, Any]:
        took = stats.percentiles(self.poll_seconds, (50, 99))
        return {
            "interval_s": self.interval,
            "page": self.recent,
            "full_page_every": self.full_every,
            "polls": self.polls,
            "errors": dict(self.errors),
            "poll_ms": {k: round(v * 1000, 1) for k, v in took.items() if k != "count"},
        }


async def _page_latency(
    base_url: str,
    api_key: str,
    path: str,
    *,
    params: dict[str, Any],
    rate: float,
    seconds: float,
    max_in_flight: int,
) -> dict[str, Any]:
    import aiohttp

    total = max(1, int(rate * seconds))
    hist = stats.LogHistogram()
    statuses: Counter[str] = Counter()
    items: list[int] = []
    in_flight = 0
    skipped = 0
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=max_in_flight, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(
        base_url, headers=_headers(api_key), connector=connector, timeout=timeout
    ) as session:

        async def one(due: float) -> None:
            nonlocal in_flight
            try:
                async with session.get(path, params=params) as response:
                    body = await response.read()
                    statuses[str(response.status)] += 1
                    if response.status == 200 and len(items) < 3:
                        import orjson

                        items.append(len(orjson.loads(body).get("deliveries", [])))
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
            finally:
                in_flight -= 1
            hist.record(max(0, round((loop.time() - due) * 1_000_000)))

        start = loop.time() + 0.05
        tasks: set[asyncio.Task[None]] = set()
        for i in range(total):
            due = stats.open_loop_due(start, rate, i)
            pause = due - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            if in_flight >= max_in_flight:
                skipped += 1  # the API is hopelessly behind: count it, never queue unboundedly
                continue
            in_flight += 1
            task = asyncio.create_task(one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=15)
        took = loop.time() - start
    out: dict[str, Any] = {
        "rate": rate,
        "seconds": seconds,
        "params": params,
        "requests": total,
        "completed": hist.total,
        "achieved_per_s": round(hist.total / took, 1) if took > 0 else None,
        "skipped_over_in_flight_cap": skipped,
        "statuses": dict(statuses),
        "items_per_page": items[0] if items else None,
    }
    if hist.total:
        out["latency_ms"] = {
            **{f"p{p}": (hist.percentile(p) or 0) / 1000 for p in (50, 95, 99)},
            "max": hist.max_value / 1000,
            "count": hist.total,
        }
    return out


def page_latency(
    base_url: str,
    api_key: str,
    webhook_id: str,
    *,
    rate: float = 200.0,
    seconds: float = 5.0,
    params: dict[str, Any] | None = None,
    max_in_flight: int = 256,
) -> dict[str, Any]:
    """Open-loop GETs of the first page of a webhook's deliveries at ``rate``/s."""
    path = f"/v1/webhooks/{webhook_id}/deliveries"
    coro = _page_latency(
        base_url,
        api_key,
        path,
        params=params or {},
        rate=rate,
        seconds=seconds,
        max_in_flight=max_in_flight,
    )
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover (uvloop is a dependency)
        return asyncio.run(coro)


def visible(base_url: str, api_key: str, webhook_id: str, timeout: float = 60.0) -> set[str]:
    """Every delivery id the webhook's log shows with an attempt, paging with the cursor."""
    url = f"{base_url}/v1/webhooks/{webhook_id}/deliveries"
    found: set[str] = set()
    cursor: str | None = None
    deadline = time.monotonic() + timeout
    with httpx.Client(headers=_headers(api_key), timeout=10.0) as client:
        while time.monotonic() < deadline:
            params: dict[str, Any] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            response = client.get(url, params=params)
            response.raise_for_status()
            page = response.json()
            found.update(d["id"] for d in page.get("deliveries", []) if d.get("attempts", 0) >= 1)
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return found
