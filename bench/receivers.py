"""Receivers on loopback, each writing one line per request to its own arrival log:

    <unix time> <webhook-id: event id> <X-Webhook-Id: delivery id> <attempt> <path> <status>

- ``Nginx``: the fast receiver, Debian's nginx (installed with apt-get if missing), run as a
  foreground child with a generated config: ``return 204;``, one worker process, keep-alive
  for a million requests. Its arrival log is nginx's own access log with ``$msec``
  (millisecond resolution, written when the 204 is sent, i.e. on arrival for ``return``),
  buffered 64 KB and flushed every second. The producer keeps each event's send time and the
  receiver logs the event id (``webhook-id`` header), so latency is measured without any
  Python in the receiver's path.
- ``Scripted``: a small aiohttp server in its own process (``python -m bench.receivers``)
  for the slow (50 ms), failing (503 for 20 % of requests) and hung (never answers) receivers;
  it stamps ``time.time()`` when a request arrives, before sleeping or answering.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    log_format bench '$msec $http_webhook_id $http_x_webhook_id '
                     '$http_x_webhook_attempt $uri $status';
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_max_body_size 4m;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        access_log {log} bench buffer=64k flush=1s;
        location / {{ return 204; }}
    }}
}}
"""


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float
    event_id: str
    delivery_id: str
    attempt: int
    path: str
    status: int


def read_arrivals(path: Path) -> list[Arrival]:
    try:
        return parse_lines(path.read_text(errors="replace"))
    except FileNotFoundError:
        return []


def parse_lines(text: str) -> list[Arrival]:
    out: list[Arrival] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 6:
            continue  # a line still being written
        try:
            attempt = int(parts[3]) if parts[3] != "-" else 0
            out.append(
                Arrival(float(parts[0]), parts[1], parts[2], attempt, parts[4], int(parts[5]))
            )
        except ValueError:
            continue
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"receiver exited with {proc.returncode} before listening")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def nginx_binary() -> str:
    """The nginx binary; installs Debian's package when it is missing."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "nginx"]
    print("nginx is missing: apt-get install nginx", flush=True)
    if (
        subprocess.run(install, env=env, capture_output=True, timeout=300, check=False).returncode
        != 0
    ):
        subprocess.run(
            ["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300, check=False
        )
        done = subprocess.run(install, env=env, capture_output=True, timeout=300, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"apt-get install nginx failed: {done.stderr.decode()[-500:]}")
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).exists():
        raise RuntimeError("nginx installed but not found on PATH or in /usr/sbin")
    return found


class Receiver:
    """A receiver child process with an arrival log."""

    kind = "receiver"

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"hookstream-bench-{self.kind}-"))
        self.log_path = self.dir / "arrivals.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self._seen: list[Arrival] = []

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def arrivals(self) -> list[Arrival]:
        """Every arrival so far (the log is read incrementally, whole lines only)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return self._seen
        end = chunk.rfind(b"\n") + 1
        if end:
            self._seen.extend(parse_lines(chunk[:end].decode(errors="replace")))
            self._offset += end
        return self._seen

    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Nginx(Receiver):
    kind = "nginx"

    def start(self) -> Nginx:
        binary = nginx_binary()
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self.dir, port=self.port, log=self.log_path))
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "stderr.log", "wb"),  # noqa: SIM115 (the child owns it)
            stdin=subprocess.DEVNULL,
        )
        wait_port(self.port, 10, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: flushes the buffered access log
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        super().stop()

    def flush(self) -> None:
        """Ask nginx to reopen (and so flush) its logs now rather than within a second."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)


class Scripted(Receiver):
    """``mode``: ``fast`` (200 at once), ``slow`` (200 after ``latency`` s), ``failing`` (503
    for ``fail`` of requests, else 200), ``hung`` (accepts, never answers)."""

    def __init__(self, mode: str, *, latency: float = 0.05, fail: float = 0.2) -> None:
        self.kind = mode
        super().__init__()
        self.mode, self.latency, self.fail = mode, latency, fail

    def start(self) -> Scripted:
        args = [sys.executable, "-m", "bench.receivers", "--mode", self.mode]
        args += ["--port", str(self.port), "--log", str(self.log_path)]
        args += ["--latency", str(self.latency), "--fail", str(self.fail)]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "stderr.log", "wb"),  # noqa: SIM115
            stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parent.parent,
        )
        wait_port(self.port, 20, self.proc)
        return self

    def flush(self) -> None:
        time.sleep(0.6)  # the child flushes its log every 0.5 s


# ── the scripted receiver's own process ─────────────────────────────────────────────────────


async def _serve(mode: str, port: int, log: Path, latency: float, fail: float) -> None:
    from aiohttp import web

    rng = random.Random(6)
    lines: list[str] = []
    out = open(log, "a", buffering=1 << 16)  # noqa: SIM115, ASYNC230 (once, before serving)

    async def handle(request: web.Request) -> web.StreamResponse:
        at = time.time()
        await request.read()
        h = request.headers
        if mode == "failing":
            status = 503 if rng.random() < fail else 200
        elif mode == "hung":
            status = 0
        else:
            status = 200
        lines.append(
            f"{at:.6f} {h.get('webhook-id', '-')} {h.get('X-Webhook-Id', '-')} "
            f"{h.get('X-Webhook-Attempt', '-')} {request.path} {status}\n"
        )
        if mode == "hung":
            await asyncio.sleep(600)  # bounded: the sender's deadline ends it long before
            return web.Response(status=200)
        if mode == "slow":
            await asyncio.sleep(latency)
        return web.Response(status=status)

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            if lines:
                out.write("".join(lines))
                lines.clear()
                out.flush()
    finally:
        out.write("".join(lines))
        out.close()
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="a scripted webhook receiver for the bench")
    parser.add_argument("--mode", choices=("fast", "slow", "failing", "hung"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--fail", type=float, default=0.2)
    a = parser.parse_args()
    try:
        import uvloop

        uvloop.run(_serve(a.mode, a.port, a.log, a.latency, a.fail))
    except ImportError:
        asyncio.run(_serve(a.mode, a.port, a.log, a.latency, a.fail))


if __name__ == "__main__":
    main()
