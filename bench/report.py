"""The run's results: ratios and targets, then JSON (raw numbers), markdown and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import stats
from bench.ceilings import unit


def _get(d: dict[str, Any] | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def ceiling(result: dict[str, Any], name: str) -> float | None:
    value = _get(result, "ceilings", name, "rate")
    return float(value) if value is not None else None


def targets(result: dict[str, Any]) -> tuple[dict[str, float | None], list[stats.Target]]:
    """The ratios of PERFORMANCE.md and whether each target is met."""
    sc = result.get("scenarios", {})
    h_best = max(
        (
            v
            for v in (ceiling(result, "H_aiohttp_uvloop"), ceiling(result, "H_aiohttp_asyncio"))
            if v
        ),
        default=None,
    )
    s1 = _get(sc, "s1_fast", "sustained_deliveries_per_s")
    s2 = _get(sc, "s2_fanout", "sustained_deliveries_per_s")
    p99_1 = _get(sc, "s1_fast", "latency_50", "latency_ms", "p99")
    p99_4 = _get(sc, "s4_isolation", "fast_latency_ms", "p99")
    late_p99 = _get(sc, "s5_retries", "lateness_s", "p99")
    late_limit = _get(sc, "s5_retries", "lateness_limit_s") or 1.0
    drain = _get(sc, "s7_drain", "drain_deliveries_per_s")
    s1_cpu = _get(sc, "s1_fast", "cpu_us_per_delivery")
    drain_cpu = _get(sc, "s7_drain", "cpu_us_per_delivery")
    record_p99 = _get(sc, "s1_fast", "record_lag", "record_lag_ms", "p99")
    pages = _get(sc, "s7_drain", "api_pages") or {}
    ratios = {
        "H_aiohttp_best": h_best,
        "s1_over_H_aiohttp": stats.ratio(s1, h_best),
        "s1_over_sender_1hook": stats.ratio(s1, ceiling(result, "sender_1hook")),
        "sender_over_H_aiohttp": stats.ratio(ceiling(result, "sender"), h_best),
        "sender_uvloop_over_H_aiohttp": stats.ratio(ceiling(result, "sender_uvloop"), h_best),
        "H_httpx_aiohttp_over_H_aiohttp": stats.ratio(ceiling(result, "H_httpx_aiohttp"), h_best),
        "H_httpx_over_H_aiohttp": stats.ratio(ceiling(result, "H_httpx"), h_best),
        "s1_over_K_consume": stats.ratio(s1, ceiling(result, "K_consume")),
        "s1_over_C_record": stats.ratio(s1, ceiling(result, "C_record")),
        "s2_over_s1": stats.ratio(s2, s1),
        "s4_p99_over_s1_p99": stats.ratio(p99_4, p99_1),
        "drain_over_H_aiohttp": stats.ratio(drain, h_best),
        "drain_over_sender_1hook": stats.ratio(drain, ceiling(result, "sender_1hook")),
        "drain_over_C_record": stats.ratio(drain, ceiling(result, "C_record")),
        "drain_over_s1": stats.ratio(drain, s1),
    }
    lost = [
        v for v in (
            _get(sc, "s1_fast", "correctness", "lost"),
            _get(sc, "s2_fanout", "correctness", "lost"),
            _get(sc, "s3_slow", "correctness", "lost"),
            _get(sc, "s4_isolation", "correctness_fast_path", "lost"),
            _get(sc, "s5_retries", "lost"),
            _get(sc, "s6_payload_16k", "correctness", "lost"),
            _get(sc, "s6_payload_256k", "correctness", "lost"),
            _get(sc, "s7_drain", "correctness", "lost"),
        ) if v is not None
    ]  # fmt: skip
    records_missing = [
        v for v in (
            _get(sc, "s7_drain", "records_missing"),
            _get(sc, "s1_fast", "record_lag", "missing"),
        ) if v is not None
    ]  # fmt: skip
    out = [
        stats.Target("deliveries/s ÷ H_aiohttp (scenario 1)", ratios["s1_over_H_aiohttp"],
                     ">=", 0.5),
        stats.Target("deliveries/s ÷ shipped sender's raw ceiling (1 webhook)",
                     ratios["s1_over_sender_1hook"], ">=", 0.7),
        stats.Target("shipped sender's raw ceiling ÷ H_aiohttp", ratios["sender_over_H_aiohttp"],
                     ">=", 0.7),
        stats.Target("p99 event → first attempt at 50 % load (ms)", p99_1, "<=", 50.0),
        stats.Target("retry lateness p99 (s)", late_p99, "<=", late_limit),
        stats.Target("retry early fires", _get(sc, "s5_retries", "early_fires"), "==", 0),
        stats.Target("scenario 2 per-delivery rate ÷ scenario 1", ratios["s2_over_s1"], ">=", 0.9),
        stats.Target("scenario 4 fast-path p99 ÷ scenario 1 p99", ratios["s4_p99_over_s1_p99"],
                     "<=", 2.0),
        stats.Target("lost deliveries (all scenarios)", sum(lost) if lost else None, "==", 0),
        # issue 10
        stats.Target("scenario 1 sustained deliveries/s (issue 10)", s1, ">=", 1000.0),
        stats.Target("scenario 1 worker CPU ms/delivery (issue 10)", stats.cpu_ms(s1_cpu),
                     "<=", 1.0),
        stats.Target("backlog drain deliveries/s (scenario 7)", drain, ">=", 2000.0),
        stats.Target("backlog drain worker CPU ms/delivery (scenario 7)",
                     stats.cpu_ms(drain_cpu), "<=", 1.0),
        stats.Target("record lag p99 at the sustained rate (ms)", record_p99, "<=", 1000.0),
        stats.Target("records never visible through the API (s1 samples, s7 drain)",
                     sum(records_missing) if records_missing else None, "==", 0),
    ]  # fmt: skip
    for variant, label in (("all", "no filter"), ("status_success", "status=success"),
                           ("status_failed", "status=failed")):  # fmt: skip
        out.append(
            stats.Target(
                f"GET deliveries page p99 at 200 req/s, {label} (ms)",
                _get(pages, variant, "latency_ms", "p99"),
                "<=",
                20.0,
            )
        )
    return ratios, out


def _fmt(x: Any, digits: int = 0) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"# Hookstream benchmark — {result['name']} ({result['date']}, {result['mode']})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, kernel {m['kernel']}; "
        f"load average at start {m['load_average_start']}, at end "
        f"{m.get('load_average_end')} (shared, noisy machine: compare ratios, not absolutes). "
        f"Run took {result.get('duration_s', 0):.0f} s.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        "",
        "## Ceilings (same run, same nginx receiver, 1 KB body, same headers, 64 in flight)",
        "",
        "| ceiling | rate | unit | runs |",
        "|---|---:|---|---|",
    ]
    for name, c in result.get("ceilings", {}).items():
        runs = ", ".join(_fmt(r) for r in c.get("runs", []))
        lines.append(f"| {name} | {_fmt(c.get('rate'))} | {unit(name)} | {runs} |")
    lines += ["", "## Scenarios (the real pipeline: `hookstream worker`, one process)", ""]
    lines += [
        "| scenario | sustained deliveries/s | p50 / p95 / p99 ms at 50 % "
        "| p50 / p95 / p99 ms at 80 % "
        "| worker CPU ms/delivery | recorder CPU ms/delivery | worker RSS MiB | lost | dup |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]

    def ms(us: Any) -> str:
        return _fmt(stats.cpu_ms(us), 2) if isinstance(us, int | float) else "–"

    def pct(lat: dict[str, Any] | None) -> str:
        if not lat:
            return "–"
        return " / ".join(_fmt(lat.get(p), 1) for p in ("p50", "p95", "p99"))

    for key, s in result.get("scenarios", {}).items():
        if "skipped" in s or "error" in s:
            why = s.get("skipped") or ("error: " + " ".join(s["error"].split())[:300])
            lines.append(f"| {key} | {why} | | | | | | | |")
            continue
        if key == "s7_drain":
            c = s.get("correctness", {})
            lines.append(
                f"| {key} (backlog of {_fmt(s.get('events'))}) "
                f"| drain {_fmt(s.get('drain_deliveries_per_s'))} | – | – "
                f"| {ms(s.get('cpu_us_per_delivery'))} "
                f"| {ms(s.get('recorder_cpu_us_per_delivery'))} "
                f"| {_fmt(s.get('worker_rss_mib'))} | {_fmt(c.get('lost'))} "
                f"| {_fmt(c.get('duplicates'))} |"
            )
            continue
        if key == "s4_isolation":
            c = s.get("correctness_fast_path", {})
            lines.append(
                f"| {key} (fast path, at {_fmt(s['rate'])} ev/s) | – "
                f"| {pct(s.get('fast_latency_ms'))}"
                f" | – | {ms(s.get('cpu_us_per_delivery'))} "
                f"| {ms(s.get('recorder_cpu_us_per_delivery'))} "
                f"| {_fmt(s.get('worker_rss_mib'))} | {_fmt(c.get('lost'))} "
                f"| {_fmt(c.get('duplicates'))} |"
            )
            continue
        if key == "s5_retries":
            late = s.get("lateness_s", {})
            lines.append(
                f"| {key} (at {_fmt(s['rate'])} ev/s) | retries {s['retries']}: lateness p50 "
                f"{_fmt(late.get('p50', 0) * 1000)} ms, "
                f"p99 {_fmt(late.get('p99', 0) * 1000)} ms, max "
                f"{_fmt(late.get('max', 0) * 1000)} ms, early {s['early_fires']} | – | – "
                f"| {ms(s.get('cpu_us_per_attempt'))} per attempt "
                f"| {ms(s.get('recorder_cpu_us_per_attempt'))} "
                f"| {_fmt(s.get('worker_rss_mib'))} | {_fmt(s.get('lost'))} "
                f"| {_fmt(s.get('duplicates'))} |"
            )
            continue
        c = s.get("correctness", {})
        lines.append(
            f"| {key} | {_fmt(s.get('sustained_deliveries_per_s'))} "
            f"| {pct(_get(s, 'latency_50', 'latency_ms'))} "
            f"| {pct(_get(s, 'latency_80', 'latency_ms'))} "
            f"| {ms(s.get('cpu_us_per_delivery'))} | {ms(s.get('recorder_cpu_us_per_delivery'))} "
            f"| {_fmt(s.get('worker_rss_mib'))} "
            f"| {_fmt(c.get('lost'))} | {_fmt(c.get('duplicates'))} |"
        )
    waits = {
        key: _get(s, "latency_50", "settled_after_s")
        for key, s in result.get("scenarios", {}).items()
        if "settled_after_s" in (_get(s, "latency_50") or {})
    }
    if waits:
        shown = ", ".join(
            f"{key} {'never (30 s)' if w is None else f'{w:g} s'}" for key, w in waits.items()
        )
        lines += [
            "",
            "The runs at 50 % start once the roles and servers use under 0.3 of a core "
            f"(`Driver.settle`), not in the last step's aftermath; waited: {shown}.",
        ]
    lines += _issue10_sections(result)
    ll = _get(result, "scenarios", "s3_slow", "littles_law")
    if ll:
        lines += [
            "",
            f"Little's law, scenario 3: {ll['in_flight_limit']} in flight per webhook ÷ "
            f"{ll['receiver_latency_s'] * 1000:.0f} ms = {ll['predicted_max_per_s']:.0f}/s "
            f"predicted; sustained ÷ predicted = {_fmt(ll['sustained_over_predicted'], 2)}.",
        ]
    lines += ["", "## Ratios and targets (PERFORMANCE.md)", ""]
    lines += ["| target | value | goal | verdict |", "|---|---:|---|---|"]
    for t in result.get("targets", []):
        value = t["value"]
        shown = _fmt(value, 3 if isinstance(value, float) and value < 10 else 1)
        lines.append(
            f"| {t['name']} | {shown} | {t['op']} {t['threshold']:g} | **{t['verdict']}** |"
        )
    met = [t["name"] for t in result.get("targets", []) if t["verdict"] == "MET"]
    missed = [t["name"] for t in result.get("targets", []) if t["verdict"] == "NOT MET"]
    unmeasured = [t["name"] for t in result.get("targets", []) if t["verdict"] == "not measured"]
    lines += [
        "",
        f"Met: {', '.join(met) or 'none'}.",
        "",
        f"Not met: {', '.join(missed) or 'none'}.",
    ]
    if unmeasured:
        lines += ["", f"Not measured in this run: {', '.join(unmeasured)}."]
    r = result.get("ratios", {})
    lines += [
        "",
        "Other ratios: " + ", ".join(f"{k} = {_fmt(v, 3)}" for k, v in r.items() if v is not None),
    ]
    prof = result.get("profile")
    if prof and "self" in prof:
        lines += ["", f"## Worker profile (py-spy, {prof['samples']} samples at "
                      f"{_fmt(prof.get('rate'))} ev/s)", ""]  # fmt: skip
        lines += ["| self % | function |", "|---:|---|"]
        lines += [f"| {p['percent']} | `{p['function']}` |" for p in prof["self"][:15]]
        lines += ["", "| thread % | thread |", "|---:|---|"]
        lines += [f"| {p['percent']} | {p['function']} |" for p in prof.get("threads", [])[:8]]
        lines += ["", "| inclusive % | function |", "|---:|---|"]
        lines += [f"| {p['percent']} | `{p['function']}` |" for p in prof["inclusive"][:25]]
        lines += ["", f"Flame graph: `{prof.get('svg')}`"]
    return "\n".join(lines) + "\n"


def _issue10_sections(result: dict[str, Any]) -> list[str]:
    """Backlog drain, record lag and the API's page latency (issue 10)."""
    sc = result.get("scenarios", {})
    lines: list[str] = []
    tree = result.get("app_tree") or {}
    if tree:
        dirty = " (with uncommitted app/ changes)" if tree.get("app_uncommitted_changes") else ""
        lines += [
            "",
            f"Pipeline from `{tree.get('dir')}`, commit {tree.get('git_head') or 'unknown'}"
            f"{dirty}; recorder role: {'yes' if tree.get('recorder') else 'no'}.",
        ]
    d = sc.get("s7_drain")
    if isinstance(d, dict) and "drain_deliveries_per_s" in d:
        cpu = d.get("cpu_roles_us_per_delivery_drain", {})
        upto = d.get("cpu_roles_us_per_delivery_until_caught_up", {})
        c = d.get("correctness", {})
        lines += [
            "",
            "## Backlog drain (scenario 7: events on the topic before the worker starts)",
            "",
            "| events | arrived | first → last arrival s | deliveries/s | worker CPU ms/delivery "
            "| recorder CPU ms/delivery | last arrival → records caught up s "
            "| records visible via API | lost | dup |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {_fmt(d.get('events'))} | {_fmt(d.get('deliveries'))} "
            f"| {_fmt(d.get('drain_seconds'), 1)} | **{_fmt(d.get('drain_deliveries_per_s'))}** "
            f"| {_fmt(stats.cpu_ms(cpu.get('worker')), 2)} "
            f"| {_fmt(stats.cpu_ms(upto.get('recorder')), 2)} "
            f"| {_fmt(d.get('last_arrival_to_caught_up_s'), 1)} "
            f"| {_fmt(d.get('records_visible'))} | {_fmt(c.get('lost'))} "
            f"| {_fmt(c.get('duplicates'))} |",
            "",
            f"Worker start → ready {_fmt(d.get('worker_start_to_ready_s'), 1)} s; CPU spent "
            f"starting (not counted above): {d.get('startup_cpu_s')}.",
        ]
    lag = _get(sc, "s1_fast", "record_lag")
    if isinstance(lag, dict) and "record_lag_ms" in lag:
        r = lag["record_lag_ms"]
        cpu = lag.get("cpu_roles_us_per_delivery", {})
        lines += [
            "",
            "## Record lag (scenario 1, at the sustained rate)",
            "",
            "Receiver's answer (nginx `$msec`) → the delivery shown with its attempt by "
            f"`GET /v1/webhooks/{{id}}/deliveries` (polled every "
            f"{_fmt(_get(lag, 'poller', 'interval_s') * 1000)} ms; the stamp is the poll's "
            "response, so these are upper bounds).",
            "",
            "| rate ev/s | samples | p50 ms | p95 ms | p99 ms | max ms | never visible "
            "| worker CPU ms/delivery | recorder CPU ms/delivery |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {_fmt(lag.get('rate'))} | {_fmt(lag.get('answered'))} (1 in "
            f"{lag.get('sample_every')}) | {_fmt(r.get('p50'))} | {_fmt(r.get('p95'))} "
            f"| **{_fmt(r.get('p99'))}** | {_fmt(r.get('max'))} | {_fmt(lag.get('missing'))} "
            f"| {_fmt(stats.cpu_ms(cpu.get('worker')), 2)} "
            f"| {_fmt(stats.cpu_ms(cpu.get('recorder')), 2)} |",
        ]
    pages = _get(sc, "s7_drain", "api_pages")
    if isinstance(pages, dict) and pages:
        lines += [
            "",
            "## API page latency (open loop, against the drained webhook's deliveries)",
            "",
            "Skipped: requests not sent because 256 were already in flight (the API was far "
            "behind); their latency is unknown, so with any skipped the percentiles are lower "
            "bounds.",
            "",
            "| GET /v1/webhooks/{id}/deliveries | rate req/s | achieved | items/page | p50 ms "
            "| p95 ms | p99 ms | max ms | API CPU ms/request | Cassandra CPU ms/request "
            "| skipped | statuses |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, got in pages.items():
            if "skipped" in got:
                lines.append(f"| {name} | {got['skipped']} | | | | | | | | | | |")
                continue
            lat = got.get("latency_ms", {})
            query = "&".join(f"{k}={v}" for k, v in got.get("params", {}).items()) or "(none)"
            lines.append(
                f"| {query} | {_fmt(got.get('rate'))} | {_fmt(got.get('achieved_per_s'))} "
                f"| {_fmt(got.get('items_per_page'))} | {_fmt(lat.get('p50'), 1)} "
                f"| {_fmt(lat.get('p95'), 1)} | **{_fmt(lat.get('p99'), 1)}** "
                f"| {_fmt(lat.get('max'), 1)} | {_fmt(got.get('api_cpu_ms_per_request'), 2)} "
                f"| {_fmt(got.get('cassandra_cpu_ms_per_request'), 2)} "
                f"| {_fmt(got.get('skipped_over_in_flight_cap'))} | {got.get('statuses')} |"
            )
    return lines


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 6))
    names, rates, colors = [], [], []
    for name, c in result.get("ceilings", {}).items():
        if unit(name) == "req/s" and c.get("rate"):
            names.append(name)
            rates.append(c["rate"])
            colors.append("#9aa5b1")
    for key, s in result.get("scenarios", {}).items():
        v = s.get("sustained_deliveries_per_s") if isinstance(s, dict) else None
        if isinstance(s, dict) and s.get("drain_deliveries_per_s"):
            v = s["drain_deliveries_per_s"]
        if v:
            names.append(f"pipeline {key}")
            rates.append(v)
            colors.append("#2f7ed8")
    ax1.barh(names, rates, color=colors)
    ax1.invert_yaxis()
    ax1.set_xscale("log")
    ax1.set_xlabel("requests or deliveries per second (log)")
    ax1.set_title("HTTP ceilings (grey) and sustained pipeline rate (blue)")
    for i, v in enumerate(rates):
        ax1.text(v, i, f" {v:,.0f}", va="center", fontsize=8)

    labels: list[str] = []
    series: dict[str, list[float]] = {"p50": [], "p95": [], "p99": []}
    for key, s in result.get("scenarios", {}).items():
        if not isinstance(s, dict):
            continue
        for load in ("latency_50", "latency_80"):
            lat = _get(s, load, "latency_ms")
            if lat:
                labels.append(f"{key}\n@{load[-2:]}%")
                for p, values in series.items():
                    values.append(lat.get(p, 0))
        if s.get("fast_latency_ms"):
            labels.append(f"{key}\nfast path")
            for p, values in series.items():
                values.append(s["fast_latency_ms"].get(p, 0))
    width = 0.27
    xs = range(len(labels))
    for i, (p, values) in enumerate(series.items()):
        ax2.bar([x + (i - 1) * width for x in xs], values, width, label=p)
    ax2.set_xticks(list(xs))
    ax2.set_xticklabels(labels, fontsize=7)
    ax2.set_yscale("log")
    ax2.set_ylabel("event → first attempt (ms, log)")
    ax2.axhline(50, color="red", linestyle="--", linewidth=1, label="p99 target 50 ms")
    ax2.legend()
    ax2.set_title("Latency percentiles per scenario and load")
    fig.suptitle(f"Hookstream bench {result['name']} {result['date']} ({result['mode']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rewrite(json_path: Path) -> None:
    """Re-render the markdown and chart of a saved run (after a change to this module)."""
    result = json.loads(json_path.read_text())
    json_path.with_suffix(".md").write_text(markdown(result))
    chart(result, json_path.with_suffix(".png"))


def write(result: dict[str, Any], directory: Path, stem: str) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    ratios, found = targets(result)
    result["ratios"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in ratios.items()}
    result["targets"] = [
        {"name": t.name, "value": t.value, "op": t.op, "threshold": t.threshold,
         "met": t.met, "verdict": t.verdict}
        for t in found
    ]  # fmt: skip
    paths = {
        "json": directory / f"{stem}.json",
        "md": directory / f"{stem}.md",
        "png": directory / f"{stem}.png",
    }
    result["files"] = {k: str(v) for k, v in paths.items()}
    paths["json"].write_text(json.dumps(result, indent=2, default=str) + "\n")
    paths["md"].write_text(markdown(result))
    try:
        chart(result, paths["png"])
    except Exception as exc:  # a chart must never lose the numbers
        result["chart_error"] = str(exc)
    return paths
