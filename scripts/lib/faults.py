#!/usr/bin/env python3
"""Herald's fault suite: real gateway and worker processes, a fault per scenario, and counts.

scripts/faults sets up the suite's own servers and environment and runs this file; docs/faults.md
describes the scenarios and what the columns mean. Standard library only (pika, for publishing
poison messages, is imported where it is used), and the database is read with the psql CLI.

Everything here is bounded: every loop has a count or a deadline, every request a timeout, and every
process and thread the harness starts is stopped in a `finally`, also on SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import collections
import dataclasses
import http.client
import http.server
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Callable, Optional

TERMINAL = ("sent", "delivered", "failed", "cancelled", "expired")
CHANNEL = "webhook"
WORK_QUEUE = f"herald.channel.{CHANNEL}"
DEAD_LETTER_QUEUE = f"herald.dlq.{CHANNEL}"


def log(message: str) -> None:
    print(f"[faults] {message}", file=sys.stderr, flush=True)


class ScenarioError(Exception):
    """The scenario could not be carried out (as opposed to Herald misbehaving, which is counted)."""


class Interrupted(BaseException):
    """SIGTERM/SIGINT: unwinds through every `finally` so that nothing started stays behind."""


# ================================================================================================
# Environment
# ================================================================================================

@dataclasses.dataclass
class Suite:
    root: Path
    run_dir: Path
    log_dir: Path
    herald_bin: str
    postgres_url: str
    amqp_url: str
    http_port: int
    pg_port: int
    amqp_port: int
    api_key: Optional[str]     # sent as Authorization: Bearer, for a gateway that requires API keys

    @staticmethod
    def from_environment() -> "Suite":
        env = os.environ
        missing = [k for k in ("HERALD_ROOT", "HERALD_RUN_DIR", "HERALD_BIN", "HERALD_POSTGRES_URL",
                               "HERALD_AMQP_URL", "HERALD_HTTP_PORT", "HERALD_PG_PORT", "HERALD_AMQP_PORT")
                   if not env.get(k)]
        if missing:
            raise SystemExit(f"faults.py: run it through scripts/faults ({', '.join(missing)} not set)")
        run_dir = Path(env["HERALD_RUN_DIR"])
        return Suite(
            root=Path(env["HERALD_ROOT"]), run_dir=run_dir,
            log_dir=Path(env.get("HERALD_LOG_DIR") or run_dir / "logs"), herald_bin=env["HERALD_BIN"],
            postgres_url=env["HERALD_POSTGRES_URL"], amqp_url=env["HERALD_AMQP_URL"],
            http_port=int(env["HERALD_HTTP_PORT"]), pg_port=int(env["HERALD_PG_PORT"]),
            amqp_port=int(env["HERALD_AMQP_PORT"]), api_key=env.get("HERALD_FAULTS_API_KEY") or None)

    @property
    def services(self) -> str:
        return str(self.root / "scripts" / "services")


# ================================================================================================
# Recording webhook receiver
# ================================================================================================

@dataclasses.dataclass
class Arrival:
    marker: str
    webhook_id: str
    at: float
    mode: str          # what the receiver did with it: ok, fail503, hang, slow


class Receiver:
    """The webhook endpoint the notifications go to: records every POST and answers per `mode`.

    Modes: ok (200), fail503 (503), hang (holds the request without answering until the mode
    changes, so the worker's channel timeout fires), slow (answers 200 after `slow_delay`).
    """

    MAX_HANG = 600.0   # a hung handler gives up eventually even if nobody switches the mode back
    SLOW_DELAY = 2.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._mode = "ok"
        self._closing = False
        self.slow_delay = self.SLOW_DELAY
        self.arrivals: dict[str, list[Arrival]] = collections.defaultdict(list)
        self.handler_errors = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            # HTTP/1.1 keep-alive: libcurl reuses connections, as it would with a real receiver.
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                self._read_body()
                path = self.path.split("?", 1)[0]
                marker = path[len("/hook/"):] if path.startswith("/hook/") else ""
                mode = receiver.record(marker, self.headers.get("webhook-id", ""))
                if mode == "hang":
                    receiver.wait_out_hang()
                    self._answer(200)
                elif mode == "fail503":
                    self._answer(503)
                elif mode == "slow":
                    time.sleep(receiver.slow_delay)
                    self._answer(200)
                else:
                    self._answer(200)

            def _read_body(self) -> None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        self.rfile.read(size + 2)
                        if size == 0:
                            break
                else:
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self, status: int) -> None:
                body = b'{"ok":true}' if status == 200 else b'{"ok":false}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    # The worker gave up on a hung request and closed the connection.
                    self.close_connection = True

            def log_message(self, *args) -> None:  # quiet: thousands of requests per scenario
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 512     # the default backlog of 5 drops connections under a burst

            def handle_error(self, request, client_address) -> None:
                receiver.handler_errors += 1

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log(f"receiver listening on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def set_mode(self, mode: str) -> None:
        assert mode in ("ok", "fail503", "hang", "slow")
        with self._cond:
            self._mode = mode
            self._cond.notify_all()

    def record(self, marker: str, webhook_id: str) -> str:
        with self._cond:
            self.arrivals[marker].append(Arrival(marker, webhook_id, time.time(), self._mode))
            return self._mode

    def wait_out_hang(self) -> None:
        deadline = time.monotonic() + self.MAX_HANG
        with self._cond:
            while self._mode == "hang" and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(min(left, 1.0))

    def arrivals_for(self, markers) -> dict[str, list[Arrival]]:
        with self._cond:
            return {m: list(self.arrivals.get(m, ())) for m in markers}

    def url(self, marker: str) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{marker}"


# ================================================================================================
# Herald processes and the suite's servers
# ================================================================================================

class Proc:
    def __init__(self, name: str, popen: subprocess.Popen, log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.expected_exit = False   # set when the harness kills it on purpose

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Herald:
    """Starts, signals and stops the herald processes of one scenario run; logs go to `log_dir`."""

    def __init__(self, suite: Suite, log_dir: Path, pid_registry: "PidRegistry") -> None:
        self.suite = suite
        self.log_dir = log_dir
        self.pids = pid_registry
        self.procs: list[Proc] = []
        self.current: dict[str, Proc] = {}       # role -> the process now serving it
        self.counts: collections.Counter = collections.Counter()
        env = dict(os.environ)
        env.update({
            "HERALD_CONFIG_DIR": str(suite.root),
            "HERALD_ALLOW_PRIVATE_TARGETS": "1",   # the receiver is on 127.0.0.1
            "HERALD_LOG_FORMAT": "json",
            # The shipped webhook channel signs with {{secrets.WEBHOOK_SECRET}} (Standard Webhooks).
            "WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        })
        self.env = env
        log_dir.mkdir(parents=True, exist_ok=True)

    def _launch(self, role: str, args: list[str]) -> Proc:
        self.counts[role] += 1
        name = f"{role}-{self.counts[role]}"
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as out:
            # Own session: a Ctrl-C on the terminal reaches the harness, which stops these itself,
            # and never a herald process halfway through a scenario.
            popen = subprocess.Popen(
                [self.suite.herald_bin, *args], cwd=self.suite.root, env=self.env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        self.current[role] = proc
        self.pids.add(proc.pid)
        return proc

    def migrate(self) -> None:
        log_path = self.log_dir / "migrate.log"
        with open(log_path, "wb") as out:
            rc = subprocess.run([self.suite.herald_bin, "migrate"], cwd=self.suite.root, env=self.env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=120).returncode
        if rc != 0:
            raise ScenarioError(f"herald migrate failed (exit {rc}); see {log_path}")
        if not self.suite.api_key and not getattr(self, "api_key", None):
            # The gateway requires an API key: make one for the suite's clients (once per database).
            created = subprocess.run([self.suite.herald_bin, "keys", "create", "--tenant", "faults",
                                      "--scopes", "send,read", "--name", "scripts/faults", "--quiet"],
                                     cwd=self.suite.root, env=self.env, stdin=subprocess.DEVNULL,
                                     capture_output=True, text=True, timeout=60)
            if created.returncode != 0:
                raise ScenarioError(f"herald keys create failed (exit {created.returncode}): {created.stderr[-500:]}")
            self.api_key = created.stdout.strip().splitlines()[-1]

    def start_gateway(self, ready_timeout: float = 60.0) -> Proc:
        proc = self._launch("gateway", ["gateway"])
        deadline = time.monotonic() + ready_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not proc.alive():
                raise ScenarioError(f"{proc.name} exited with {proc.popen.returncode} while starting:\n{proc.tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.suite.http_port, timeout=3)
                conn.request("GET", "/readyz")
                resp = conn.getresponse()
                resp.read()
                conn.close()
                if resp.status == 200:
                    return proc
                last = f"HTTP {resp.status}"
            except OSError as error:
                last = type(error).__name__
            time.sleep(0.25)
        raise ScenarioError(f"{proc.name} not ready within {ready_timeout:.0f} s (last /readyz: {last})")

    def start_worker(self, ready_timeout: float = 60.0) -> Proc:
        proc = self._launch("worker", ["worker", "--channel", CHANNEL])
        # The worker has no HTTP endpoint: it is ready when its log says the consumer is connected.
        # Should that wording change, "worker started" plus a few seconds is a fair stand-in.
        deadline = time.monotonic() + ready_timeout
        started_seen: Optional[float] = None
        while time.monotonic() < deadline:
            if not proc.alive():
                raise ScenarioError(f"{proc.name} exited with {proc.popen.returncode} while starting:\n{proc.tail()}")
            try:
                text = proc.log_path.read_text(errors="replace")
            except OSError:
                text = ""
            if '"AMQP consumer connected"' in text:
                return proc
            if started_seen is None and '"worker started"' in text:
                started_seen = time.monotonic()
            if started_seen is not None and time.monotonic() - started_seen > 5:
                return proc
            time.sleep(0.2)
        raise ScenarioError(f"{proc.name} not consuming within {ready_timeout:.0f} s")

    def kill9(self, role: str) -> Proc:
        proc = self.current[role]
        proc.expected_exit = True
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(timeout=10)
        self.pids.remove(proc.pid)
        return proc

    def signal(self, role: str, signum: int) -> None:
        proc = self.current[role]
        if proc.alive():
            proc.popen.send_signal(signum)

    def unexpected_exits(self) -> list[Proc]:
        return [p for p in self.procs if not p.expected_exit and not p.alive()]

    def stop_all(self, grace: float = 20.0) -> list[str]:
        """SIGTERM (graceful shutdown), SIGKILL after `grace`; returns what needed the SIGKILL."""
        stubborn = []
        live = [p for p in self.procs if p.alive()]
        for proc in live:
            proc.expected_exit = True
            proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in live:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stubborn.append(proc.name)
                proc.popen.kill()
                proc.popen.wait(timeout=10)
        for proc in self.procs:
            self.pids.remove(proc.pid)
        return stubborn


class PidRegistry:
    """The live herald pids, in a file: if the harness itself is SIGKILLed, scripts/faults ends them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pids: set[int] = set()
        self.lock = threading.Lock()

    def add(self, pid: int) -> None:
        with self.lock:
            self.pids.add(pid)
            self._write()

    def remove(self, pid: int) -> None:
        with self.lock:
            self.pids.discard(pid)
            self._write()

    def _write(self) -> None:
        self.path.write_text("".join(f"{p}\n" for p in sorted(self.pids)))


class Services:
    """The suite's PostgreSQL and RabbitMQ, through scripts/services (the same env as scripts/faults)."""

    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self.log_path = suite.log_dir / "services.log"

    def run(self, *args: str, timeout: float = 240.0) -> None:
        with open(self.log_path, "ab") as out:
            out.write(f"\n==== {time.strftime('%H:%M:%S')} scripts/services {' '.join(args)}\n".encode())
            out.flush()
            rc = subprocess.run([self.suite.services, *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, timeout=timeout).returncode
        if rc != 0:
            raise ScenarioError(f"scripts/services {' '.join(args)} failed (exit {rc}); see {self.log_path}")

    def pg_up(self) -> bool:
        return subprocess.run(
            ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.suite.pg_port), "-U", "postgres", "-t", "2"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10).returncode == 0

    def amqp_up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.suite.amqp_port), timeout=2):
                return True
        except OSError:
            return False

    def ensure_up(self) -> None:
        """A scenario that failed halfway may have left a server down: every run starts with both up."""
        if not self.pg_up():
            log("postgres is down: starting it")
            self.run("start", "postgres")
        if not self.amqp_up():
            log("rabbitmq is down: starting it")
            self.run("start", "rabbitmq")

    def stop(self, service: str) -> None:
        self.run("stop", service)
        up = self.pg_up() if service == "postgres" else self.amqp_up()
        if up:
            # scripts/services leaves servers it did not start alone: then there is no fault to test.
            raise ScenarioError(f"{service} still answers after scripts/services stop: not the suite's own server?")

    def start(self, service: str) -> None:
        self.run("start", service)


# ================================================================================================
# PostgreSQL, via psql
# ================================================================================================

class DBError(Exception):
    pass


class DB:
    def __init__(self, url: str) -> None:
        self.url = url
        self.env = dict(os.environ, PGCONNECT_TIMEOUT="5")

    def query(self, sql: str, timeout: float = 60.0) -> list[list[str]]:
        try:
            done = subprocess.run(
                ["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", self.url, "-c", sql],
                env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise DBError(f"psql timed out after {timeout:.0f} s") from error
        if done.returncode != 0:
            raise DBError(done.stderr.strip() or f"psql exited {done.returncode}")
        return [line.split("\t") for line in done.stdout.splitlines() if line]

    def try_query(self, sql: str) -> Optional[list[list[str]]]:
        try:
            return self.query(sql, timeout=20)
        except DBError:
            return None


def run_filter(run_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", run_id):
        raise ValueError(f"unsafe run id {run_id!r}")
    return f"n.request->'metadata'->>'run' = '{run_id}'"


def terminal_sql(column: str) -> str:
    return f"{column} IN ({', '.join(repr(s) for s in TERMINAL)})"


# ================================================================================================
# Clients
# ================================================================================================

@dataclasses.dataclass
class Submission:
    """One notification the clients want accepted: one marker, one idempotency key."""
    index: int
    marker: str
    key: str
    body: bytes
    requests: int = 0
    accepted_id: Optional[str] = None
    first_try_at: Optional[float] = None   # monotonic, the first request of the first copy
    accepted_at: Optional[float] = None    # monotonic, the first 2xx
    ids: set = dataclasses.field(default_factory=set)
    rejected: Optional[str] = None      # a 4xx: the request itself was refused


class ApiClient:
    """One client connection (keep-alive), as one thread of a real client would hold it."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.conn: Optional[http.client.HTTPConnection] = None

    def post(self, path: str, body: bytes, headers: dict) -> tuple[int, Optional[str], bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self.conn.request("POST", path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
            if resp.will_close:
                self.close()
            return resp.status, resp.getheader("Retry-After"), data
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Load:
    """Submits notifications at a steady pace from `concurrency` client threads.

    Each request carries its idempotency key (body and header). A 503, a 5xx, a timeout or a
    connection error is "not accepted": the client retries the same request, like a real client
    would, a bounded number of times within `retry_budget` seconds, honouring Retry-After. Only a
    2xx counts as accepted. `copies=3` sends each notification three times with the same key:
    two at once, then a third after both answered.
    """

    def __init__(self, port: int, submissions: list[Submission], duration: float, concurrency: int,
                 copies: int = 1, retry_budget: float = 45.0, max_tries: int = 10, timeout: float = 10.0,
                 api_key: Optional[str] = None) -> None:
        self.port = port
        self.api_key = api_key
        self.submissions = submissions
        self.rate = len(submissions) / max(duration, 0.1)
        self.concurrency = max(1, min(concurrency, len(submissions) or 1))
        self.copies = copies
        self.retry_budget = retry_budget
        self.max_tries = max_tries
        self.timeout = timeout
        self.outcomes: collections.Counter = collections.Counter()   # per HTTP request: "202", "503", "refused", ...
        self.samples: dict[int, str] = {}    # the first body answered with each non-2xx status, for the report
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._next = 0
        self._threads: list[threading.Thread] = []
        self.started_at = 0.0
        self.finished_at: Optional[float] = None

    def start(self) -> None:
        self.started_at = time.monotonic()
        for i in range(self.concurrency):
            thread = threading.Thread(target=self._client_loop, name=f"client-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        done = not any(t.is_alive() for t in self._threads)
        if not done:
            self.stop_event.set()
        self.finished_at = time.monotonic()
        return done

    def stop(self) -> None:
        self.stop_event.set()

    def _take(self) -> Optional[Submission]:
        with self._lock:
            if self._next >= len(self.submissions):
                return None
            sub = self.submissions[self._next]
            self._next += 1
            return sub

    def _client_loop(self) -> None:
        client = ApiClient(self.port, self.timeout)
        try:
            while not self.stop_event.is_set():
                sub = self._take()
                if sub is None:
                    return
                # Pace by schedule, not by answers: while the gateway is down the backlog grows, as
                # it would for real clients, instead of the load politely waiting for it.
                delay = self.started_at + sub.index / self.rate - time.monotonic()
                if delay > 0 and self.stop_event.wait(delay):
                    return
                if self.copies == 1:
                    self._submit(sub, client)
                else:
                    self._submit_copies(sub, client)
        finally:
            client.close()

    def _submit_copies(self, sub: Submission, client: ApiClient) -> None:
        extra = [threading.Thread(target=self._submit_with_own_client, args=(sub,), daemon=True)
                 for _ in range(self.copies - 2)]
        for thread in extra:
            thread.start()
        self._submit(sub, client)
        for thread in extra:
            thread.join(self.retry_budget + self.timeout + 5)
        self._submit(sub, client)   # and once more after the others answered

    def _submit_with_own_client(self, sub: Submission) -> None:
        client = ApiClient(self.port, self.timeout)
        try:
            self._submit(sub, client)
        finally:
            client.close()

    def _submit(self, sub: Submission, client: ApiClient) -> None:
        headers = {"Content-Type": "application/json", "Idempotency-Key": sub.key}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        deadline = time.monotonic() + self.retry_budget
        with self._lock:
            if sub.first_try_at is None:
                sub.first_try_at = time.monotonic()
        for attempt in range(self.max_tries):
            if self.stop_event.is_set():
                return
            retry_after = None
            try:
                status, retry_after, data = client.post("/v1/notifications", sub.body, headers)
                outcome = str(status)
            except socket.timeout:
                status, data, outcome = None, b"", "timeout"
            except ConnectionRefusedError:
                status, data, outcome = None, b"", "refused"
            except (OSError, http.client.HTTPException) as error:
                status, data, outcome = None, b"", type(error).__name__
            with self._lock:
                sub.requests += 1
                self.outcomes[outcome] += 1
                if status is not None and not 200 <= status < 300 and status not in self.samples:
                    self.samples[status] = data[:300].decode(errors="replace")
            if status is not None and 200 <= status < 300:
                try:
                    notification_id = json.loads(data)["id"]
                except (ValueError, KeyError, TypeError):
                    notification_id = None
                with self._lock:
                    if notification_id:
                        sub.ids.add(notification_id)
                    if sub.accepted_id is None and notification_id:
                        sub.accepted_id = notification_id
                        sub.accepted_at = time.monotonic()
                return
            if status is not None and 400 <= status < 500 and status not in (408, 425, 429):
                with self._lock:
                    sub.rejected = f"{status} {data[:200].decode(errors='replace')}"
                return
            pause = min(5.0, 0.25 * 2 ** attempt) * random.uniform(0.8, 1.2)
            if retry_after and retry_after.strip().isdigit():
                pause = max(pause, min(float(retry_after.strip()), 10.0))
            if time.monotonic() + pause > deadline or self.stop_event.wait(pause):
                return


def make_submissions(run_id: str, scenario: str, count: int, receiver: Receiver) -> list[Submission]:
    subs = []
    for i in range(count):
        marker = f"{run_id}-{i:06d}"
        body = json.dumps({
            "channel": CHANNEL,
            "to": {"webhook_url": receiver.url(marker)},
            "message": {"subject": "Fault suite", "text": f"{scenario} notification {i}"},
            "metadata": {"run": run_id, "marker": marker, "scenario": scenario},
            "idempotency_key": marker,
        }, separators=(",", ":")).encode()
        subs.append(Submission(index=i, marker=marker, key=marker, body=body))
    return subs


# ================================================================================================
# RabbitMQ (pika): poison messages and queue inspection
# ================================================================================================

def _pika():
    try:
        import pika  # noqa: PLC0415 (only the poison scenario needs it)
    except ImportError as error:
        raise ScenarioError("pika is not installed in the suite's venv (scripts/faults installs it)") from error
    return pika


POISON_BODIES = [
    b"\x00\xff\xfe not JSON at all",
    b'{"delivery_id": "0190a0a0-0000-7000-8000-00000000',          # truncated JSON
    b'{"hello": "a JSON object, but not a delivery job"}',
    b'{"delivery_id": "not-a-uuid", "notification_id": 7, "channel": "webhook", "attempt": "one"}',
]


def publish_poison(amqp_url: str, run_id: str) -> list[str]:
    pika = _pika()
    ids = [f"poison-{run_id}-{i}" for i in range(len(POISON_BODIES))]
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for message_id, body in zip(ids, POISON_BODIES):
            # The default exchange, straight to the work queue: what a buggy or hostile producer does.
            channel.basic_publish(
                exchange="", routing_key=WORK_QUEUE, body=body, mandatory=True,
                properties=pika.BasicProperties(message_id=message_id, delivery_mode=2,
                                                content_type="application/octet-stream"))
    finally:
        connection.close()
    return ids


def inspect_poison(amqp_url: str, poison_ids: list[str], scan: bool = True) -> tuple[int, set[str], int]:
    """(work queue messages ready, poison ids found in the dead-letter queue, dead-letter depth).

    Reads the dead-letter queue without acknowledging: closing the channel puts every message back.
    A missing dead-letter queue counts as empty (a Herald that keeps poison elsewhere needn't have one).
    """
    pika = _pika()
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        work_ready = channel.queue_declare(queue=WORK_QUEUE, passive=True).method.message_count
        try:
            depth = channel.queue_declare(queue=DEAD_LETTER_QUEUE, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            return work_ready, set(), 0
        wanted, found = set(poison_ids), set()
        for _ in range(min(depth, 100_000) if scan else 0):
            method, properties, _body = channel.basic_get(queue=DEAD_LETTER_QUEUE, auto_ack=False)
            if method is None:
                break
            if properties.message_id in wanted:
                found.add(properties.message_id)
                if found == wanted:
                    break
        channel.close()
    finally:
        connection.close()
    return work_ready, found, depth


def poison_in_database(db: "DB", poison_ids: list[str]) -> set[str]:
    """Poison ids a worker stored in the `poison_messages` table, where Herald has one."""
    if not poison_ids:
        return set()
    rows = db.try_query("SELECT to_regclass('poison_messages') IS NOT NULL")
    if not rows or rows[0][0] != "t":
        return set()
    listed = ", ".join("'" + i.replace("'", "''") + "'" for i in poison_ids)
    rows = db.try_query(f"SELECT DISTINCT message_id FROM poison_messages WHERE message_id IN ({listed})") or []
    return {row[0] for row in rows}


# ================================================================================================
# Results
# ================================================================================================

@dataclasses.dataclass
class RunResult:
    scenario: str
    run: int
    run_id: str
    log_dir: str
    sent: int = 0                   # notifications the clients tried to submit
    requests: int = 0               # HTTP requests, with retries (and the copies of duplicate-submissions)
    accepted: int = 0               # notifications with a 2xx
    rejected: int = 0               # refused with a 4xx (a harness or validation problem)
    terminal: int = 0               # accepted, and every delivery terminal
    failed: int = 0                 # of those, with a delivery that failed for good
    missing: int = 0                # accepted but not in the database
    lost: int = 0
    stored_unacknowledged: int = 0  # in the database although the client never got a 2xx
    dup_notifications: int = 0      # markers (idempotency keys) with more than one notification
    dup_sends: int = 0
    unexplained_dups: int = 0
    dup_2xx: int = 0                # markers the receiver answered 2xx more than once
    accept_p50_ms: Optional[float] = None   # first request -> first 2xx, retries included
    accept_p99_ms: Optional[float] = None
    accept_max_ms: Optional[float] = None
    drain_s: Optional[float] = None
    drain_from_load_end_s: Optional[float] = None
    drained: bool = False
    http: dict = dataclasses.field(default_factory=dict)
    statuses: dict = dataclasses.field(default_factory=dict)
    checks: list = dataclasses.field(default_factory=list)   # [name, ok, detail]
    notes: list = dataclasses.field(default_factory=list)
    error: Optional[str] = None
    seconds: float = 0.0

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append([name, bool(ok), detail])
        log(f"  check {name}: {'ok' if ok else 'FAILED'}{' - ' + detail if detail else ''}")

    @property
    def failed_checks(self) -> list:
        return [c for c in self.checks if not c[1]]

    @property
    def ok(self) -> bool:
        return self.error is None and self.lost == 0 and not self.failed_checks


# ================================================================================================
# A scenario run: load, fault, drain, count
# ================================================================================================

@dataclasses.dataclass
class Timing:
    load: float                 # seconds over which the notifications are submitted
    fault_at: float             # seconds after the load started
    outage: float = 0.0         # how long the fault lasts, where it has a length


class Run:
    def __init__(self, ctx: "Context", scenario: str, index: int) -> None:
        self.ctx = ctx
        self.scenario = scenario
        stamp = time.strftime("%Y%m%dT%H%M%S")
        self.run_id = f"{scenario}-{index}-{stamp}-{secrets.token_hex(2)}"
        self.log_dir = ctx.suite.log_dir / self.run_id
        self.herald = Herald(ctx.suite, self.log_dir, ctx.pids)
        self.result = RunResult(scenario=scenario, run=index, run_id=self.run_id, log_dir=str(self.log_dir))
        self.load: Optional[Load] = None
        self.timing: Optional[Timing] = None
        self.submissions: list[Submission] = []
        self.fault_end: Optional[float] = None    # monotonic

    # --- set-up ----------------------------------------------------------------------------------
    def start_system(self) -> None:
        self.ctx.receiver.set_mode("ok")
        self.ctx.receiver.slow_delay = Receiver.SLOW_DELAY
        self.ctx.services.ensure_up()
        self.herald.migrate()
        self.herald.start_gateway()
        self.herald.start_worker()

    def start_load(self, timing: Timing, copies: int = 1) -> Load:
        self.timing = timing
        self.submissions = make_submissions(self.run_id, self.scenario, self.ctx.n, self.ctx.receiver)
        self.load = Load(self.ctx.suite.http_port, self.submissions, timing.load, self.ctx.concurrency, copies=copies,
                         api_key=self.ctx.suite.api_key or getattr(self.herald, "api_key", None))
        log(f"  load: {self.ctx.n} notifications over {timing.load:.0f} s"
            f"{f' (x{copies} copies)' if copies > 1 else ''}, {self.load.concurrency} clients")
        self.load.start()
        return self.load

    def at(self, seconds: float) -> None:
        """Sleeps until `seconds` after the load started."""
        assert self.load is not None
        left = self.load.started_at + seconds - time.monotonic()
        if left > 0:
            time.sleep(left)

    def fault_ended(self) -> None:
        self.fault_end = time.monotonic()

    # --- drain and count -------------------------------------------------------------------------
    def finish(self) -> None:
        assert self.load is not None and self.timing is not None
        # Long enough for the last scheduled request to use up its whole retry budget.
        load_deadline = self.load.started_at + self.timing.load + self.load.retry_budget + 60
        if not self.load.join(load_deadline - time.monotonic()):
            self.result.notes.append("clients still busy long after the load should have ended: stopped")
        load_end = self.load.finished_at or time.monotonic()
        fault_end = self.fault_end if self.fault_end is not None else load_end
        self._count_submissions()
        # A 4xx means the suite's own requests are refused (validation, authentication): then the
        # other counts say nothing, so it fails the run instead of passing with nothing accepted.
        self.result.check("requests accepted by the API", self.result.rejected == 0 and self.result.accepted > 0,
                          f"{self.result.rejected} refused with 4xx, {self.result.accepted} accepted")
        drained_at = self._drain(load_end)
        if drained_at is not None:
            self.result.drained = True
            self.result.drain_s = round(max(0.0, drained_at - fault_end), 1)
            self.result.drain_from_load_end_s = round(max(0.0, drained_at - load_end), 1)
        # Late sends (a redelivery after the last status flipped) still reach the receiver: give them a moment.
        time.sleep(2.0)
        self._count_outcomes()
        for proc in self.herald.unexpected_exits():
            self.result.check(f"{proc.name} alive", False,
                              f"exited unexpectedly with {proc.popen.returncode}; log {proc.log_path}")

    def _count_submissions(self) -> None:
        r, subs = self.result, self.submissions
        r.sent = sum(1 for s in subs if s.requests > 0)
        r.requests = sum(s.requests for s in subs)
        r.accepted = sum(1 for s in subs if s.accepted_id)
        r.rejected = sum(1 for s in subs if s.rejected and not s.accepted_id)
        r.http = dict(sorted(self.load.outcomes.items()))
        latencies = sorted((s.accepted_at - s.first_try_at) * 1000 for s in subs if s.accepted_at and s.first_try_at)
        if latencies:
            r.accept_p50_ms = round(latencies[len(latencies) // 2], 1)
            r.accept_p99_ms = round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1)
            r.accept_max_ms = round(latencies[-1], 1)
        if r.rejected:
            first = next(s.rejected for s in subs if s.rejected)
            r.notes.append(f"{r.rejected} refused with 4xx, e.g. {first}")
        for status, sample in sorted(self.load.samples.items()):
            if status >= 500:
                r.notes.append(f"HTTP {status} answered {self.load.outcomes[str(status)]} times, first body: {sample}")
        log(f"  submitted: {r.sent} sent, {r.accepted} accepted, {r.requests} requests {r.http}; "
            f"accept latency p50 {r.accept_p50_ms} ms, p99 {r.accept_p99_ms} ms, max {r.accept_max_ms} ms")

    def _drain(self, load_end: float) -> Optional[float]:
        """Polls until every accepted notification is terminal; returns when (monotonic) or None."""
        accepted = {s.accepted_id for s in self.submissions if s.accepted_id}
        if not accepted:
            return time.monotonic()
        sql = f"""
            SELECT n.id, bool_and(d.id IS NOT NULL AND {terminal_sql('d.status')})
            FROM notifications n LEFT JOIN deliveries d ON d.notification_id = n.id
            WHERE {run_filter(self.run_id)} GROUP BY n.id"""
        deadline = time.monotonic() + self.ctx.drain_timeout
        last_open, last_change, last_log = None, time.monotonic(), 0.0
        while True:
            # A failing query (PostgreSQL still down) is no progress, not an error.
            rows = self.ctx.db.try_query(sql)
            now = time.monotonic()
            if rows is not None:
                done = {row[0] for row in rows if row[1] == "t"}
                still_open = len(accepted - done)
                if still_open == 0:
                    return now
                if still_open != last_open:
                    last_open, last_change = still_open, now
                if now - last_log >= 5:
                    log(f"  draining: {still_open} of {len(accepted)} accepted not terminal yet")
                    last_log = now
            if now >= deadline:
                self.result.notes.append(f"drain timeout: {last_open} not terminal after {self.ctx.drain_timeout:.0f} s")
                return None
            if now - last_change >= self.ctx.stall_timeout:
                self.result.notes.append(
                    f"no progress for {self.ctx.stall_timeout:.0f} s: {last_open} not terminal (stopped waiting)")
                return None
            time.sleep(1.0)

    def _count_outcomes(self) -> None:
        r = self.result
        sql = f"""
            SELECT n.id, coalesce(n.request->'metadata'->>'marker', ''), coalesce(d.id::text, ''),
                   coalesce(d.status, ''), (SELECT count(*) FROM attempts a WHERE a.delivery_id = d.id)
            FROM notifications n LEFT JOIN deliveries d ON d.notification_id = n.id
            WHERE {run_filter(self.run_id)}"""
        try:
            rows = self.ctx.db.query(sql, timeout=120)
        except DBError as error:
            raise ScenarioError(f"could not read the outcome from PostgreSQL: {error}") from error

        deliveries_of: dict[str, list[tuple[str, str, int]]] = collections.defaultdict(list)
        notifications_of_marker: dict[str, set] = collections.defaultdict(set)
        attempts_of_delivery: dict[str, int] = {}
        for nid, marker, did, status, attempts in rows:
            notifications_of_marker[marker].add(nid)
            if did:
                deliveries_of[nid].append((did, status, int(attempts)))
                attempts_of_delivery[did] = int(attempts)
        status_counts: collections.Counter = collections.Counter(
            status for ds in deliveries_of.values() for _, status, _ in ds)
        r.statuses = dict(sorted(status_counts.items()))

        accepted = [s for s in self.submissions if s.accepted_id]
        in_db = {row[0] for row in rows}
        for s in accepted:
            if s.accepted_id not in in_db:
                r.missing += 1
                continue
            ds = deliveries_of.get(s.accepted_id, [])
            if ds and all(status in TERMINAL for _, status, _ in ds):
                r.terminal += 1
                if any(status == "failed" for _, status, _ in ds):
                    r.failed += 1
        r.lost = r.accepted - r.terminal
        r.stored_unacknowledged = sum(
            1 for s in self.submissions if not s.accepted_id and notifications_of_marker.get(s.marker))
        r.dup_notifications = sum(1 for ids in notifications_of_marker.values() if len(ids) > 1)
        inconsistent = sum(1 for s in self.submissions if len(s.ids) > 1)
        if inconsistent:
            r.notes.append(f"{inconsistent} keys answered with more than one notification id")

        # Duplicate sends: every receiver request beyond the first per marker. A repeat is explained
        # when its delivery has an attempt record for it (k requests need k attempt records); a
        # request that names no known delivery, or a second notification for the same key, is not.
        arrivals = self.ctx.receiver.arrivals_for(s.marker for s in self.submissions)
        unexplained_markers = []
        for marker, hits in arrivals.items():
            if not hits:
                continue
            r.dup_sends += len(hits) - 1
            if sum(1 for h in hits if h.mode in ("ok", "slow")) > 1:
                r.dup_2xx += 1
            per_delivery = collections.Counter(delivery_id_of(h.webhook_id) for h in hits)
            explained = sum(min(k - 1, max(attempts_of_delivery.get(did, 0) - 1, 0))
                            for did, k in per_delivery.items() if did)
            unexplained = (len(hits) - 1) - explained
            if unexplained > 0:
                r.unexplained_dups += unexplained
                unexplained_markers.append(marker)
        if unexplained_markers:
            r.notes.append(f"unexplained duplicates e.g. {', '.join(unexplained_markers[:3])}")
        log(f"  outcome: terminal {r.terminal}/{r.accepted} (failed {r.failed}), lost {r.lost}, missing {r.missing}, "
            f"dup sends {r.dup_sends} (unexplained {r.unexplained_dups}), statuses {r.statuses}")


def error_lines(procs: list[Proc]) -> list[str]:
    """What each process logged at error level, by message: the first place to look when a run fails."""
    notes = []
    for proc in procs:
        counts: collections.Counter = collections.Counter()
        example: dict[str, str] = {}
        try:
            lines = proc.log_path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue   # a crash trace, not a log line
            if not isinstance(entry, dict) or entry.get("level") not in ("error", "critical"):
                continue
            message = str(entry.get("message", ""))
            counts[message] += 1
            example.setdefault(message, str(entry.get("error", ""))[:200])
        if counts:
            top = "; ".join(f"'{m}' x{n}" + (f" ({example[m]})" if example[m] else "") for m, n in counts.most_common(3))
            notes.append(f"{proc.name} logged {sum(counts.values())} errors: {top}")
    return notes


def delivery_id_of(webhook_id: str) -> Optional[str]:
    """Standard Webhooks ids are msg_ + the delivery id without dashes (HeraldProviders/Signing.swift)."""
    hex_part = webhook_id[4:] if webhook_id.startswith("msg_") else ""
    try:
        return str(uuid.UUID(hex=hex_part))
    except ValueError:
        return None


# ================================================================================================
# Scenarios
# ================================================================================================

@dataclasses.dataclass
class Context:
    suite: Suite
    receiver: Receiver
    services: Services
    db: DB
    pids: PidRegistry
    quick: bool
    n: int
    concurrency: int
    drain_timeout: float
    stall_timeout: float

    def pick(self, full, quick):
        return quick if self.quick else full


def worker_kill9(run: Run) -> None:
    t = Timing(load=run.ctx.pick(20, 8), fault_at=run.ctx.pick(8, 3))
    # A receiver that takes 250 ms keeps requests in flight, so the kill lands between "sent" and
    # "recorded" for some of them rather than on an idle worker.
    run.ctx.receiver.slow_delay = 0.25
    run.ctx.receiver.set_mode("slow")
    run.start_load(t)
    run.at(t.fault_at)
    proc = run.herald.kill9("worker")
    log(f"  fault: kill -9 {proc.name} (pid {proc.pid})")
    time.sleep(1.0)
    run.herald.start_worker()
    run.fault_ended()
    run.finish()


def gateway_kill9(run: Run) -> None:
    t = Timing(load=run.ctx.pick(20, 8), fault_at=run.ctx.pick(8, 3), outage=run.ctx.pick(3, 2))
    run.start_load(t)
    run.at(t.fault_at)
    proc = run.herald.kill9("gateway")
    log(f"  fault: kill -9 {proc.name} (pid {proc.pid}); down {t.outage:.0f} s")
    time.sleep(t.outage)
    run.herald.start_gateway()
    run.fault_ended()
    run.finish()


def rabbitmq_restart(run: Run) -> None:
    t = Timing(load=run.ctx.pick(30, 12), fault_at=run.ctx.pick(5, 3), outage=run.ctx.pick(10, 5))
    run.start_load(t)
    run.at(t.fault_at)
    log(f"  fault: scripts/services stop rabbitmq, {t.outage:.0f} s down")
    run.ctx.services.stop("rabbitmq")
    time.sleep(t.outage)
    run.ctx.services.start("rabbitmq")
    run.fault_ended()
    run.finish()


class Cluster:
    """The 3-node RabbitMQ cluster of `scripts/cluster test`, driven through that script."""

    def __init__(self, script: str) -> None:
        self.script = script

    @staticmethod
    def from_environment() -> "Cluster":
        script = os.environ.get("HERALD_CLUSTER_SCRIPT")
        if not script:
            raise ScenarioError("this scenario needs a RabbitMQ cluster: run it with scripts/cluster test")
        return Cluster(script)

    def run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        return subprocess.run([self.script, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def leader(self, queue: str) -> Optional[str]:
        done = self.run("leader", queue, timeout=30)
        name = done.stdout.strip()
        return name if done.returncode == 0 and name else None

    def stop_node(self, node: str) -> None:
        done = self.run("stop-node", node)
        if done.returncode != 0:
            raise ScenarioError(f"scripts/cluster stop-node {node} failed: {done.stderr[-300:]}")

    def start_node(self, node: str) -> None:
        done = self.run("start-node", node, timeout=180)
        if done.returncode != 0:
            raise ScenarioError(f"scripts/cluster start-node {node} failed: {done.stderr[-300:]}")

    @staticmethod
    def amqp_port(node: str) -> int:
        match = re.fullmatch(r"heraldc([1-3])@localhost", node)
        if not match:
            raise ScenarioError(f"unexpected cluster node name {node!r}")
        return int(os.environ.get("HERALD_CLUSTER_AMQP_BASE", "5680")) + int(match.group(1))


CONNECTED = re.compile(r'"AMQP (publisher|consumer) connected"')
ENDPOINT_PORT = re.compile(r'amqp://[^"@]*@[^":/]+:(\d+)/')


def broker_connections(procs: list[Proc]) -> dict[str, list[int]]:
    """For each process and AMQP role, the broker ports it connected to, in order (from its log)."""
    seen: dict[str, list[int]] = collections.defaultdict(list)
    for proc in procs:
        try:
            lines = proc.log_path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            role = CONNECTED.search(line)
            port = ENDPOINT_PORT.search(line)
            if role and port:
                seen[f"{proc.name} {role.group(1)}"].append(int(port.group(1)))
    return dict(seen)


def rabbitmq_leader_stop(run: Run) -> None:
    """Stops the cluster node that leads the webhook channel's quorum queue under load."""
    cluster = Cluster.from_environment()
    t = Timing(load=run.ctx.pick(20, 10), fault_at=run.ctx.pick(7, 4))
    leader = cluster.leader(WORK_QUEUE)
    if leader is None:
        raise ScenarioError(f"no leader for {WORK_QUEUE}: is it a quorum queue (HERALD_AMQP_QUEUE_TYPE=quorum)?")
    stopped_port = cluster.amqp_port(leader)
    run.start_load(t)
    run.at(t.fault_at)
    log(f"  fault: stop {leader} (port {stopped_port}), the leader of {WORK_QUEUE}")
    cluster.stop_node(leader)
    try:
        new_leader = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            new_leader = cluster.leader(WORK_QUEUE)
            if new_leader not in (None, leader):
                break
            time.sleep(0.5)
        run.result.check("a survivor leads the queue", new_leader not in (None, leader),
                         f"{leader} stopped, leader now {new_leader}")
        run.fault_ended()
        run.finish()
        connections = broker_connections(run.herald.procs)
        on_stopped = {who: ports for who, ports in connections.items() if stopped_port in ports}
        moved = [who for who, ports in on_stopped.items() if ports[-1] != stopped_port]
        stuck = [who for who, ports in on_stopped.items() if ports[-1] == stopped_port]
        run.result.notes.append(f"broker connections by process and role (ports in order): {connections}")
        run.result.check("clients of the stopped node reconnected to a survivor", bool(moved) and not stuck,
                         f"moved: {', '.join(moved) or 'none'}; still on the stopped node: {', '.join(stuck) or 'none'}")
    finally:
        cluster.start_node(leader)


def postgres_restart(run: Run) -> None:
    t = Timing(load=run.ctx.pick(35, 14), fault_at=run.ctx.pick(5, 3), outage=run.ctx.pick(20, 5))
    run.start_load(t)
    run.at(t.fault_at)
    log(f"  fault: scripts/services stop postgres, {t.outage:.0f} s down")
    run.ctx.services.stop("postgres")
    time.sleep(t.outage)
    run.ctx.services.start("postgres")
    run.fault_ended()
    run.finish()


def receiver_503(run: Run) -> None:
    t = Timing(load=run.ctx.pick(30, 10), fault_at=run.ctx.pick(3, 2), outage=run.ctx.pick(120, 10))
    run.start_load(t)
    run.at(t.fault_at)
    log(f"  fault: receiver answers 503 for {t.outage:.0f} s")
    run.ctx.receiver.set_mode("fail503")
    time.sleep(t.outage)
    run.ctx.receiver.set_mode("ok")
    run.fault_ended()
    run.finish()


def receiver_hang(run: Run) -> None:
    # Longer than the webhook channel's 15 s timeout, so attempts time out (ambiguous) and are retried.
    t = Timing(load=run.ctx.pick(30, 10), fault_at=run.ctx.pick(3, 2), outage=run.ctx.pick(40, 20))
    run.start_load(t)
    run.at(t.fault_at)
    log(f"  fault: receiver hangs for {t.outage:.0f} s")
    run.ctx.receiver.set_mode("hang")
    time.sleep(t.outage)
    run.ctx.receiver.set_mode("ok")
    run.fault_ended()
    run.finish()


def poison_message(run: Run) -> None:
    t = Timing(load=run.ctx.pick(15, 8), fault_at=run.ctx.pick(4, 2))
    run.start_load(t)
    run.at(t.fault_at)
    ids = publish_poison(run.ctx.suite.amqp_url, run.run_id)
    log(f"  fault: published {len(ids)} undecodable messages to {WORK_QUEUE}")
    run.fault_ended()
    run.finish()
    # Out of the work queue means set aside somewhere inspectable: dead-lettered in the broker
    # (rejected without requeue) or stored in PostgreSQL (`poison_messages`), whichever this Herald does.
    deadline = time.monotonic() + 15
    while True:
        in_db = poison_in_database(run.ctx.db, ids)
        work_ready, in_dlq, depth = inspect_poison(run.ctx.suite.amqp_url, ids, scan=len(in_db) < len(ids))
        if len(in_dlq | in_db) == len(ids) or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    run.result.check("poison set aside", len(in_dlq | in_db) == len(ids),
                     f"{len(in_dlq | in_db)}/{len(ids)} out of the work queue: {len(in_dlq)} in {DEAD_LETTER_QUEUE}"
                     f" (depth {depth}), {len(in_db)} in table poison_messages")
    run.result.check("work queue empty", work_ready == 0, f"{work_ready} ready in {WORK_QUEUE}")


def sighup_storm(run: Run) -> None:
    t = Timing(load=run.ctx.pick(20, 8), fault_at=run.ctx.pick(5, 2))
    run.start_load(t)
    run.at(t.fault_at)
    log("  fault: 20 SIGHUPs to the gateway and the worker, 0.2 s apart")
    for _ in range(20):
        run.herald.signal("gateway", signal.SIGHUP)
        run.herald.signal("worker", signal.SIGHUP)
        time.sleep(0.2)
    run.fault_ended()
    run.finish()
    for role in ("gateway", "worker"):
        proc = run.herald.current[role]
        reloads = proc.log_path.read_text(errors="replace").count('"configuration reloaded"')
        run.result.notes.append(f"{proc.name}: {reloads} reloads logged")


def duplicate_submissions(run: Run) -> None:
    t = Timing(load=run.ctx.pick(15, 8), fault_at=0)
    run.start_load(t, copies=3)
    run.finish()
    r = run.result
    inconsistent = sum(1 for s in run.submissions if len(s.ids) > 1)
    r.check("one notification per key", r.dup_notifications == 0,
            f"{r.dup_notifications} keys with more than one notification in the database")
    r.check("same id for every copy", inconsistent == 0, f"{inconsistent} keys answered with different ids")


@dataclasses.dataclass
class Scenario:
    name: str
    func: Callable[[Run], None]
    quick: bool
    full_runs: int
    summary: str
    # Needs the 3-node cluster of scripts/cluster test: run only when named with --only.
    cluster: bool = False


SCENARIOS = [
    Scenario("worker-kill9", worker_kill9, True, 1, "kill -9 the worker mid-run, start a new one"),
    Scenario("gateway-kill9", gateway_kill9, False, 1, "kill -9 the gateway under load, restart it; clients retry"),
    Scenario("rabbitmq-restart", rabbitmq_restart, False, 1, "stop RabbitMQ for 10 s, start it again"),
    Scenario("postgres-restart", postgres_restart, True, 5, "stop PostgreSQL for 20 s (quick: 5 s), start it again"),
    Scenario("receiver-503", receiver_503, False, 1, "the receiver answers 503 for 2 min (quick: 10 s)"),
    Scenario("receiver-hang", receiver_hang, False, 1, "the receiver hangs 40 s (quick: 20 s), past the 15 s timeout"),
    Scenario("poison-message", poison_message, True, 1, "undecodable messages on the work queue among normal traffic"),
    Scenario("sighup-storm", sighup_storm, False, 1, "20 SIGHUPs to the gateway and the worker under load"),
    Scenario("duplicate-submissions", duplicate_submissions, True, 1, "every notification sent 3 times with one key"),
    Scenario("rabbitmq-leader-stop", rabbitmq_leader_stop, False, 1,
             "stop the cluster node leading the channel's quorum queue (scripts/cluster test)", cluster=True),
]
BY_NAME = {s.name: s for s in SCENARIOS}


def run_one(ctx: Context, scenario: Scenario, index: int, results: list[RunResult]) -> None:
    run = Run(ctx, scenario.name, index)
    log(f"=== {scenario.name} #{index}: {scenario.summary} (run id {run.run_id}, logs {run.log_dir})")
    started = time.monotonic()
    try:
        run.start_system()
        scenario.func(run)
    except ScenarioError as error:
        run.result.error = str(error)
    except Interrupted:
        # The report still shows the run that was cut short.
        run.result.error = "interrupted"
        results.append(run.result)
        raise
    except Exception as error:  # noqa: BLE001 - a harness bug must not hide the other scenarios' results
        run.result.error = f"{type(error).__name__}: {error}"
        (run.log_dir / "harness-traceback.txt").write_text(traceback.format_exc())
    finally:
        if run.load is not None:
            run.load.stop()
        stubborn = run.herald.stop_all()
        if stubborn:
            run.result.notes.append(f"needed SIGKILL to stop: {', '.join(stubborn)}")
        run.result.notes.extend(error_lines(run.herald.procs))
        run.result.seconds = round(time.monotonic() - started, 1)
    r = run.result
    for note in r.notes:
        log(f"  note: {note}")
    if r.error:
        log(f"  ERROR: {r.error}")
    log(f"=== {scenario.name} #{index}: {'ok' if r.ok else 'FAILED'} in {r.seconds:.0f} s")
    results.append(r)


# ================================================================================================
# Report
# ================================================================================================

COLUMNS = ["scenario", "runs", "sent", "accepted", "terminal", "lost", "dup sends", "unexplained dups", "drain s", "result"]


def aggregate(results: list[RunResult]) -> list[dict]:
    rows = []
    for name in dict.fromkeys(r.scenario for r in results):
        runs = [r for r in results if r.scenario == name]
        drains = [r.drain_s for r in runs if r.drain_s is not None]
        timed_out = any(not r.drained for r in runs if r.error is None)
        if timed_out:
            drain = "timeout"
        elif drains:
            drain = f"{max(drains):.1f}" if len(drains) == 1 else f"{min(drains):.1f}–{max(drains):.1f}"
        else:
            drain = "-"
        failures = sum(1 for r in runs if not r.ok)
        rows.append({
            "scenario": name, "runs": len(runs),
            "sent": sum(r.sent for r in runs), "accepted": sum(r.accepted for r in runs),
            "terminal": sum(r.terminal for r in runs), "lost": sum(r.lost for r in runs),
            "dup sends": sum(r.dup_sends for r in runs), "unexplained dups": sum(r.unexplained_dups for r in runs),
            "drain s": drain,
            "result": "ok" if failures == 0 else ("ERROR" if any(r.error for r in runs) else "FAIL"),
        })
    return rows


def text_table(rows: list[dict]) -> str:
    cells = [COLUMNS] + [[str(row[c]) for c in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    def fmt(line):
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths)))
    return "\n".join([fmt(cells[0]), "  ".join("-" * w for w in widths)] + [fmt(line) for line in cells[1:]])


def markdown(rows: list[dict], results: list[RunResult], meta: dict) -> str:
    out = [f"# Herald fault suite, {meta['date']}", ""]
    out += [f"- {k}: {v}" for k, v in meta.items() if k != "date"]
    out += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" if c == "scenario" else "---:" for c in COLUMNS) + "|"]
    out += ["| " + " | ".join(str(row[c]) for c in COLUMNS) + " |" for row in rows]
    out += ["", "## Runs", ""]
    for r in results:
        out.append(f"### {r.scenario} #{r.run} — {'ok' if r.ok else 'FAILED'} ({r.seconds:.0f} s)")
        out.append("")
        out.append(f"- run id `{r.run_id}`, logs `{r.log_dir}`")
        if r.error:
            out.append(f"- **error**: {r.error}")
        out.append(f"- sent {r.sent}, accepted {r.accepted}, terminal {r.terminal} (failed {r.failed}), lost {r.lost}"
                   f" (missing from the database {r.missing}), stored without a 2xx {r.stored_unacknowledged}")
        out.append(f"- HTTP requests {r.requests}: {r.http}; accept latency (retries included) p50 {r.accept_p50_ms} ms,"
                   f" p99 {r.accept_p99_ms} ms, max {r.accept_max_ms} ms")
        out.append(f"- delivery statuses: {r.statuses}")
        out.append(f"- duplicate sends {r.dup_sends} (unexplained {r.unexplained_dups}), markers answered 2xx twice"
                   f" {r.dup_2xx}, keys with several notifications {r.dup_notifications}")
        drain = f"{r.drain_s} s after the fault ended ({r.drain_from_load_end_s} s after the load)" if r.drained else "not drained"
        out.append(f"- drain: {drain}")
        for name, ok, detail in r.checks:
            out.append(f"- check {name}: {'ok' if ok else '**FAILED**'} — {detail}")
        out += [f"- {note}" for note in r.notes]
        out.append("")
    return "\n".join(out)


# ================================================================================================
# Main
# ================================================================================================

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/faults", description="Herald fault suite (docs/faults.md)")
    parser.add_argument("--quick", action="store_true", help="the CI subset, under ~3 minutes")
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--runs", type=int, help="repetitions per scenario (default 1; postgres-restart 5 in the full suite)")
    parser.add_argument("--n", type=int, help="notifications per run (default 2000; 300 with --quick)")
    parser.add_argument("--report", help="Markdown report file (default $HERALD_RUN_DIR/faults-report.md)")
    parser.add_argument("--concurrency", type=int, default=32, help="client threads (default 32)")
    parser.add_argument("--drain-timeout", type=float, help="seconds to wait for terminal states (default 300; 60 quick)")
    parser.add_argument("--keep-services", action="store_true", help="(handled by scripts/faults)")
    parser.add_argument("--stop-services", action="store_true", help="(handled by scripts/faults)")
    parser.add_argument("--list", action="store_true", help="list the scenarios")
    parser.add_argument("--check-args", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only:
        unknown = [n for n in args.only.split(",") if n not in BY_NAME]
        if unknown:
            parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    for name in ("runs", "n", "concurrency"):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= 1_000_000:
            parser.error(f"--{name} must be between 1 and 1000000")
    if args.drain_timeout is not None and not 1 <= args.drain_timeout <= 7200:
        parser.error("--drain-timeout must be between 1 and 7200 seconds")
    return args


def selected(args: argparse.Namespace) -> list[tuple[Scenario, int]]:
    if args.only:
        chosen = [BY_NAME[n] for n in args.only.split(",")]
    elif args.quick:
        chosen = [s for s in SCENARIOS if s.quick]
    else:
        chosen = [s for s in SCENARIOS if not s.cluster]
    return [(s, args.runs or (1 if args.quick else s.full_runs)) for s in chosen]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.list:
        for s in SCENARIOS:
            print(f"{s.name:24} {'quick ' if s.quick else '      '}{s.summary}")
        return 0
    if args.check_args:
        return 0

    def interrupted(signum, _frame):
        raise Interrupted(signum)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)

    suite = Suite.from_environment()
    suite.log_dir.mkdir(parents=True, exist_ok=True)
    report = Path(args.report) if args.report else suite.run_dir / "faults-report.md"
    drain_timeout = args.drain_timeout or (60.0 if args.quick else 300.0)
    receiver = Receiver()
    ctx = Context(
        suite=suite, receiver=receiver, services=Services(suite), db=DB(suite.postgres_url),
        pids=PidRegistry(suite.run_dir / "faults.pids"), quick=args.quick,
        n=args.n or (300 if args.quick else 2000), concurrency=args.concurrency,
        drain_timeout=drain_timeout,
        # Past the longest legitimate pause: the 64 s retry tier plus a 15 s timeout.
        stall_timeout=min(drain_timeout, 45.0 if args.quick else 120.0))
    plan = selected(args)
    log(f"plan: {', '.join(f'{s.name} x{n}' for s, n in plan)}; N={ctx.n}; binary {suite.herald_bin}")

    results: list[RunResult] = []
    started = time.time()
    interrupted_by = None
    receiver.start()
    try:
        for scenario, runs in plan:
            for index in range(1, runs + 1):
                run_one(ctx, scenario, index, results)
    except Interrupted as signum:
        interrupted_by = signum
        log(f"interrupted by signal {signum}: stopping")
    finally:
        receiver.stop()

    rows = aggregate(results)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        "mode": ("quick" if args.quick else "full") + (f", only {args.only}" if args.only else ""),
        "notifications per run": ctx.n,
        "binary": suite.herald_bin,
        "commit": git_commit(suite.root),
        "machine": f"{os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}",
        "duration": f"{time.time() - started:.0f} s",
    }
    if interrupted_by is not None:
        meta["interrupted"] = f"by signal {interrupted_by}; partial results"
    print(text_table(rows), flush=True)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(markdown(rows, results, meta) + "\n")
    report.with_suffix(".json").write_text(json.dumps(
        {"meta": meta, "table": rows, "runs": [dataclasses.asdict(r) for r in results]}, indent=2) + "\n")
    log(f"report: {report} (and {report.with_suffix('.json').name})")
    if interrupted_by is not None:
        return 130
    return 0 if results and all(r.ok for r in results) else 1


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (out.stdout.strip() or "none") + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
