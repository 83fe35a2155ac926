"""``python -m bench [--quick] [--name NAME] [--scenarios s1,s7,...] [--profile]``

1. the local stack on the bench's own ports (reused, or started and stopped again),
2. nginx (installed with apt-get if missing) as the fast receiver,
3. the ceilings, each in a fresh process,
4. the scenarios against the real pipeline,
5. ``bench/results/<date>-<name>.{json,md,png}``, and the markdown printed.

Full run < 20 minutes, ``--quick`` < 7 minutes (ceilings + scenarios 1 and 7).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.kafka import client_config
from bench import ceilings, machine, report
from bench.receivers import Nginx
from bench.scenarios import Plan, Scenarios
from bench.stack import BenchStack

RESULTS = Path(__file__).resolve().parent / "results"
ALL_SCENARIOS = ("s1", "s2", "s3", "s4", "s5", "s6", "s7")
QUICK_SCENARIOS = ("s1", "s7")
SCENARIO_HELP = """\
scenarios (each on its own pipeline: topics, keyspace, consumer groups; nginx is the fast
receiver; the pipeline is `hookstream worker` plus `recorder` when the CLI has that command,
`scheduler` for s5 and `api` for s1 and s7):
  s1  fast receiver, 1 webhook, 1 KB: sustained deliveries/s (stepped open-loop rate, flat
      lag), event -> first attempt p50/p95/p99 at 50 % and 80 % of it, and the record lag at
      the sustained rate (receiver's answer -> attempt visible through
      GET /v1/webhooks/{id}/deliveries, a sampled subset polled every 100 ms)
  s2  fan-out: each event matches 10 webhooks
  s3  receiver answering after 50 ms (Little's law)
  s4  isolation: 1 % of events to a receiver that never answers, 99 % to nginx
  s5  retries: 20 % of attempts get 503, schedule 0, 1s, 2s, 3s, 4s (worker + scheduler)
  s6  payloads of 16 KB and 256 KB
  s7  backlog drain: 20,000 1 KB events on the topic before one worker starts; deliveries/s
      from the first to the last arrival at nginx, lost/duplicates, every record visible
      through the API; then GET deliveries page p50/p95/p99 at 200 req/s open loop against
      that webhook's 20,000 deliveries: no filter, status=success, status=failed
every scenario reports CPU per delivery (user+sys from /proc) per role: worker, and recorder
when there is one. --quick runs the ceilings, s1 and s7.

BENCH_APP_DIR=DIR runs the pipeline from another source tree (e.g. `git archive <commit> |
tar -x -C DIR`) with this bench: a before/after on the same machine.
"""


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def measure_ceilings(stack: BenchStack, nginx: Nginx, quick: bool) -> dict[str, Any]:
    from confluent_kafka.admin import AdminClient, NewTopic

    from app.store.schema import migrate
    from bench.producer import prefill
    from tests.support import isolated, settings_env

    seconds, warmup, rounds = (3.0, 1.0, 1) if quick else (5.0, 1.0, 2)
    out: dict[str, Any] = {}
    http_cfg = {
        "url": nginx.url("/ceiling"),
        "concurrency": 64,
        "warmup": warmup,
        "seconds": seconds,
    }
    for r in range(rounds):
        order = ceilings.HTTP if r % 2 == 0 else tuple(reversed(ceilings.HTTP))
        for name in order:
            got = ceilings.measure(name, http_cfg)
            entry = out.setdefault(name, {"runs": [], "unit": ceilings.unit(name)})
            entry["runs"].append(round(got["rate"], 1) if got.get("rate") else None)
            if got.get("error"):
                entry["error"] = got["error"]
            entry["last"] = got
            say(f"  ceiling {name:<18} {got.get('rate') or 0:>9,.0f} {ceilings.unit(name)}")

    # K_consume over a pre-filled topic of 1 KB events
    token = uuid.uuid4().hex[:6]
    topic = f"bench.kconsume.{token}"
    bootstrap = stack.settings.kafka.bootstrap_servers
    admin = AdminClient(client_config(stack.settings))
    for f in admin.create_topics([NewTopic(topic, 6, 1)]).values():
        f.result(30)
    count = 30_000 if quick else 150_000
    fill_rate = prefill(bootstrap, topic, count)
    k_cfg = {"bootstrap": bootstrap, "topic": topic, "count": count, "seconds": seconds * 2}
    got = ceilings.measure("K_consume", {**k_cfg, "warmup": 0})
    out["K_consume"] = {"runs": [_round(got.get("rate"))], "unit": "msg/s", "last": got,
                        "prefill_produce_rate": round(fill_rate)}  # fmt: skip
    say(f"  ceiling K_consume          {got.get('rate') or 0:>9,.0f} msg/s ({count} prefilled)")
    admin.delete_topics([topic])

    # C_insert / C_record into a keyspace of their own
    c_settings = isolated(stack.settings, f"bc{token}")
    migrate(c_settings)
    env = settings_env(c_settings)
    for name in ("C_insert", "C_record"):
        got = ceilings.measure(name, {"concurrency": 64, "warmup": warmup, "seconds": seconds}, env)
        out[name] = {"runs": [_round(got.get("rate"))], "unit": ceilings.unit(name), "last": got}
        if got.get("error"):
            out[name]["error"] = got["error"]
        say(f"  ceiling {name:<18} {got.get('rate') or 0:>9,.0f} {ceilings.unit(name)}")
    out["_cleanup_keyspaces"] = [c_settings.cassandra.keyspace]

    got = ceilings.measure("S_sign", {"warmup": 0.5, "seconds": seconds})
    out["S_sign"] = {"runs": [_round(got.get("rate"))], "unit": "ops/s", "last": got}
    say(f"  ceiling S_sign             {got.get('rate') or 0:>9,.0f} ops/s")
    for entry in out.values():
        if isinstance(entry, dict) and "runs" in entry:
            runs = [r for r in entry["runs"] if r]
            entry["rate"] = max(runs) if runs else None
    return out


def app_tree_info() -> dict[str, Any]:
    """Which source tree the roles run from, its commit and whether its app/ has edits."""
    import subprocess

    from bench.pipeline import app_tree, has_command

    tree = app_tree()
    info: dict[str, Any] = {"dir": str(tree), "recorder": has_command("recorder", tree)}

    def git(*args: str) -> str | None:
        done = subprocess.run(
            ["git", *args], cwd=tree, capture_output=True, text=True, timeout=30, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else None

    # a tree from ``git archive`` has no .git: its commit is in the archive's header, kept by
    # the recipe in BENCHMARKS.md as DIR/.git-commit
    marker = tree / ".git-commit"
    info["git_head"] = marker.read_text().strip() if marker.exists() else git("rev-parse", "HEAD")
    if info["git_head"] and not marker.exists():
        info["app_uncommitted_changes"] = bool(git("status", "--porcelain", "--", "app"))
    return info


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def cleanup(stack: BenchStack, keyspaces: list[str], prefixes: list[str]) -> None:
    """Drop what the run created (best effort, bounded): its keyspaces and topics."""
    from confluent_kafka.admin import AdminClient

    try:
        admin = AdminClient(client_config(stack.settings))
        names = [t for t in admin.list_topics(timeout=10).topics
                 if any(t.startswith(p + ".") for p in prefixes)]  # fmt: skip
        if names:
            admin.delete_topics(names, operation_timeout=30)
        from cassandra.cluster import Cluster

        c = stack.settings.cassandra
        cluster = Cluster(c.hosts, port=c.port)
        try:
            session = cluster.connect()
            for ks in keyspaces:
                session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=60)
        finally:
            cluster.shutdown()
    except Exception as exc:
        say(f"cleanup incomplete: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Hookstream's benchmark: ceilings, then the real pipeline, as ratios.",
        epilog=SCENARIO_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="ceilings (3 s each) + scenarios 1 and 7, < 7 min"
    )
    parser.add_argument("--name", default=None, help="results file name (default: full/quick)")
    parser.add_argument("--scenarios", default=None, help="comma list of s1..s7")
    parser.add_argument("--profile", action="store_true", help="py-spy the worker in s1")
    parser.add_argument("--no-ceilings", action="store_true")
    parser.add_argument("--keep-stack", action="store_true", help="never stop the stack")
    parser.add_argument(
        "--drain-events",
        type=int,
        default=20_000,
        help="backlog of scenario 7 (default 20,000; smaller only to try the bench itself)",
    )
    a = parser.parse_args(argv)

    began = time.monotonic()
    budget = 420.0 if a.quick else 20 * 60.0
    chosen = (
        a.scenarios.split(",")
        if a.scenarios
        else list(QUICK_SCENARIOS if a.quick else ALL_SCENARIOS)
    )
    unknown = [c for c in chosen if c not in ALL_SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {', '.join(ALL_SCENARIOS)}")
    name = a.name or ("quick" if a.quick else "full")
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    stem = f"{date}-{name}"
    log_dir = Path(tempfile.mkdtemp(prefix="hookstream-bench-logs-"))
    result: dict[str, Any] = {
        "name": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if a.quick else "full",
        "machine": machine.describe(),
        "app_tree": app_tree_info(),
        "scenarios": {},
    }
    say(f"bench {name}: load average {result['machine']['load_average_start']}, logs in {log_dir}")
    say(f"pipeline from {result['app_tree']['dir']} (recorder: {result['app_tree']['recorder']})")
    stack = BenchStack.up(say)
    nginx = Nginx().start()
    say(f"nginx receiver on {nginx.url()}")
    plan = Plan(
        quick=a.quick,
        step_seconds=4.0 if a.quick else 8.0,
        latency_seconds=4.0 if a.quick else 8.0,
        drain_timeout=15.0 if a.quick else 25.0,
        # Two bisections in full mode: the ×2 ladder leaves 800 → 1,600, one bisection a
        # 400-wide bracket, two a 200-wide one (the 1,000 lies inside the first).
        refinements=0 if a.quick else 2,
        deadline=began + budget,
        profile=a.profile,
        profile_seconds=8.0,
        results_dir=RESULTS,
        run_name=stem,
        record_lag_seconds=8.0 if a.quick else 16.0,
        api_seconds=5.0 if a.quick else 10.0,
        drain_events=a.drain_events,
    )
    runner = Scenarios(stack.settings, nginx, plan, say, log_dir)
    keyspaces: list[str] = []
    try:
        if not a.no_ceilings:
            say("ceilings")
            result["ceilings"] = measure_ceilings(stack, nginx, a.quick)
            keyspaces += result["ceilings"].pop("_cleanup_keyspaces", [])
        s1 = None
        if "s1" in chosen:
            runner.s1_fast()
            s1 = runner.results.get("s1_fast", {}).get("sustained_events_per_s")
        if "s2" in chosen:
            runner.s2_fanout()
        if "s3" in chosen:
            runner.s3_slow()
        if "s4" in chosen:
            runner.s4_isolation(s1)
        if "s5" in chosen:
            runner.s5_retries(s1)
        if "s6" in chosen:
            for kib in (16, 256):
                runner.s6_payload(s1, kib)
        if "s7" in chosen:
            runner.s7_drain()
    finally:
        result["scenarios"] = runner.results
        if runner.profile is not None:
            result["profile"] = runner.profile
        result["machine"]["load_average_end"] = machine.load_average()
        result["duration_s"] = round(time.monotonic() - began, 1)
        paths = report.write(result, RESULTS, stem)
        print()
        print(paths["md"].read_text())
        say(f"results: {', '.join(str(p) for p in paths.values())}")
        nginx.stop()
        for s in runner.results.values():
            info = s.get("pipeline") if isinstance(s, dict) else None
            if info:
                keyspaces.append(info["keyspace"])
        prefixes = [s["pipeline"]["topic_prefix"] for s in runner.results.values()
                    if isinstance(s, dict) and s.get("pipeline")]  # fmt: skip
        cleanup(stack, keyspaces, prefixes)
        if not a.keep_stack:
            stack.down(say)
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
