#!/usr/bin/env python3
"""Herald's benchmark harness: the durable-work baseline and Herald in one run, CPU per process.

scripts/bench sets up the servers, builds herald and the C tools (bench/tools/), and runs this file.
Standard library only; the database is read with the psql CLI. Every wait has a deadline, every
process started here is stopped in a `finally` (also on SIGTERM).

What is measured and how: bench/results/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional

TERMINAL = "('sent', 'delivered', 'failed', 'cancelled', 'expired')"
PHASES = ("baseline", "single", "batch", "rates", "scaling", "growth", "memory")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

FULL = dict(baseline_n=20000, warmup=1000, single_n=20000, batch_n=50000, batch_size=100, batch_c=8,
            rates=(500, 1000, 2000), rate_seconds=20, scaling_n=20000,
            scaling=((1, 1), (2, 1), (4, 1), (1, 2), (2, 2), (4, 2)), drain_timeout=300,
            growth_attempts=10_000_000, growth_days=30, growth_keep_days=7,
            memory_n=100_000, memory_step=10_000)
QUICK = dict(baseline_n=5000, warmup=300, single_n=3000, batch_n=5000, batch_size=100, batch_c=8,
             rates=(500, 1000, 2000), rate_seconds=3, scaling_n=2000,
             scaling=((2, 1), (4, 1), (1, 2)), drain_timeout=120,
             growth_attempts=1_000_000, growth_days=30, growth_keep_days=7,
             memory_n=30_000, memory_step=10_000)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class Interrupted(BaseException):
    pass


def _interrupt(signum, _frame):
    raise Interrupted(f"signal {signum}")


# ================================================================================================
# Environment, processes, /proc
# ================================================================================================

ENV = os.environ
ROOT = Path(ENV.get("HERALD_ROOT", "."))
RUN_DIR = Path(ENV.get("HERALD_RUN_DIR", ".run/bench"))
LOG_DIR = Path(ENV.get("HERALD_LOG_DIR", str(RUN_DIR / "logs")))
HERALD = ENV.get("HERALD_BIN", "")
TOOLS = Path(ENV.get("HERALD_BENCH_TOOLS", str(RUN_DIR / "bin")))
PG_URL = ENV.get("HERALD_POSTGRES_URL", "")
HTTP_BASE = int(ENV.get("HERALD_BENCH_HTTP_BASE", "8190"))
SINK_PORT = int(ENV.get("HERALD_BENCH_SINK_PORT", "9190"))


def psql(sql: str, timeout: float = 120) -> list[list[str]]:
    out = subprocess.run(["psql", "-X", "-q", "-At", "-F", "|", "-v", "ON_ERROR_STOP=1", PG_URL, "-c", sql],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr.strip()[-400:]}")
    return [line.split("|") for line in out.stdout.splitlines() if line]


def proc_cpu(pid: int) -> tuple[float, float]:
    """(own utime+stime, reaped children's cutime+cstime) in seconds; (0, 0) if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    # After the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, (int(fields[13]) + int(fields[14])) / CLOCK_TICKS


def children_of(parent: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            kids.append(int(entry))
    return kids


def tree_cpu(root: int) -> float:
    """CPU seconds of a process, its live descendants and the children it reaped."""
    own, reaped = proc_cpu(root)
    total = own + reaped
    for kid in children_of(root):
        total += tree_cpu(kid)
    return total


def rss_kib(pid: int) -> dict:
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:")):
                values[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return {"rss_kib": values.get("VmRSS", 0), "peak_rss_kib": values.get("VmHWM", 0), "anon_kib": values.get("RssAnon", 0)}


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def server_pids() -> dict[str, int]:
    pids = {}
    pg_dir = Path(ENV.get("HERALD_PG_DIR", str(RUN_DIR / "pg")))
    try:
        pids["postgres"] = int((pg_dir / "data" / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        pass
    try:
        pids["rabbitmq"] = int((Path(ENV.get("HERALD_RABBITMQ_DIR", str(RUN_DIR / "rabbitmq"))) / "rabbit.pid").read_text().strip())
    except (OSError, ValueError):
        pass
    return pids


class Processes:
    """The herald processes of the current phase, by role."""

    def __init__(self) -> None:
        self.running: list[tuple[str, subprocess.Popen]] = []

    def launch(self, name: str, argv: list[str], extra_env: dict[str, str]) -> subprocess.Popen:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log_file = open(LOG_DIR / f"{name}.log", "w")
        env = dict(ENV)
        env.update(extra_env)
        popen = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                 start_new_session=True)
        log_file.close()
        self.running.append((name, popen))
        return popen

    def pids(self, role: str) -> list[int]:
        return [p.pid for name, p in self.running if name.split("-")[0] == role and p.poll() is None]

    def check_alive(self) -> None:
        for name, popen in self.running:
            if popen.poll() is not None:
                tail = (LOG_DIR / f"{name}.log").read_text(errors="replace").splitlines()[-20:]
                raise RuntimeError(f"{name} exited with {popen.returncode}:\n" + "\n".join(tail))

    def stop(self) -> None:
        for _, popen in self.running:
            if popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 25
        for _, popen in self.running:
            try:
                popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=5)
        self.running = []


# ================================================================================================
# Herald
# ================================================================================================

class Herald:
    def __init__(self) -> None:
        self.procs = Processes()
        self.gateways = 0
        self.secret = "whsec_" + "YmVuY2gtc2VjcmV0LWZvci1zY3JpcHRzLWJlbmNo"
        self.env = {
            "HERALD_ALLOW_PRIVATE_TARGETS": "1", "HERALD_LOG_FORMAT": "text", "HERALD_LOG_LEVEL": "warning",
            "HERALD_CONFIG_DIR": str(ROOT), "HERALD_API_RATE_LIMIT": "1000000",
            "WEBHOOK_SECRET": self.secret, "HERALD_HTTP_HOST": "127.0.0.1",
        }

    def ports(self) -> list[int]:
        return [HTTP_BASE + i for i in range(self.gateways)]

    def start(self, workers: int, gateways: int) -> None:
        self.procs.launch("sink", [HERALD, "sink", "--port", str(SINK_PORT), "--quiet"], self.env)
        for i in range(gateways):
            self.procs.launch(f"gateway-{i}", [HERALD, "gateway"], {**self.env, "HERALD_HTTP_PORT": str(HTTP_BASE + i)})
        for i in range(workers):
            self.procs.launch(f"worker-{i}", [HERALD, "worker", "--channel", "webhook"], self.env)
        self.gateways = gateways
        deadline = time.monotonic() + 60
        for port in self.ports() + [SINK_PORT]:
            path = "/readyz" if port != SINK_PORT else "/stats"
            while True:
                self.procs.check_alive()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"127.0.0.1:{port}{path} did not answer 200 within 60 s")
                time.sleep(0.3)
        # The workers' consumers connect after /readyz of the gateway: give them a moment.
        time.sleep(1.0)

    def stop(self) -> None:
        self.procs.stop()
        self.gateways = 0

    def key(self, tenant: str) -> str:
        out = subprocess.run([HERALD, "keys", "create", "--tenant", tenant, "--scopes", "send,read", "--name", "bench",
                              "--rate-limit", "1000000", "--quiet"], capture_output=True, text=True, timeout=60,
                             env={**ENV, **self.env})
        if out.returncode != 0:
            raise RuntimeError(f"herald keys create failed: {out.stderr[-400:]}")
        return out.stdout.strip()

    def cpu(self) -> dict[str, float]:
        values = {role: sum(tree_cpu(pid) for pid in self.procs.pids(role)) for role in ("gateway", "worker", "sink")}
        for role, pid in server_pids().items():
            values[role] = tree_cpu(pid)
        values["machine"] = machine_busy()
        return values

    def memory(self) -> dict[str, dict]:
        out = {}
        for role in ("gateway", "worker"):
            for index, pid in enumerate(self.procs.pids(role)):
                out[f"{role}-{index}"] = rss_kib(pid)
        return out


def notification_body(path: Path, batch: int = 0) -> Path:
    one = {"channel": "webhook", "to": {"webhook_url": f"http://127.0.0.1:{SINK_PORT}/hooks/bench"},
           "message": {"subject": "Bench", "text": "Hello from scripts/bench"}, "metadata": {"source": "bench"}}
    document = {"notifications": [one] * batch} if batch else one
    path.write_text(json.dumps(document, separators=(",", ":")))
    return path


def loadgen(args: list[str], timeout: float) -> dict:
    out = subprocess.run([str(TOOLS / "loadgen"), *args], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed ({out.returncode}): {out.stderr[-400:]}")
    return json.loads(out.stdout)


def sink_received() -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{SINK_PORT}/stats", timeout=5) as response:
        return int(json.loads(response.read())["received"])


def wait_settled(herald: Herald, tenant: str, expected: int, timeout: float, sink_before: int) -> int:
    """Waits until `expected` deliveries of `tenant` are terminal; returns how many are.

    The sink's request count is watched first (cheap); the database is asked only once the sink has
    seen enough requests, so the polling costs PostgreSQL next to nothing during the measurement.
    """
    deadline = time.monotonic() + timeout
    done, last_seen, last_change = 0, -1, time.monotonic()
    while True:
        seen = sink_received() - sink_before
        if seen >= expected:
            done = int(psql(f"SELECT count(*) FROM deliveries WHERE tenant = '{tenant}' AND status IN {TERMINAL}")[0][0])
            if done >= expected:
                return done
        if seen != last_seen:
            last_seen, last_change = seen, time.monotonic()
        if time.monotonic() > deadline or time.monotonic() - last_change > 60:
            done = int(psql(f"SELECT count(*) FROM deliveries WHERE tenant = '{tenant}' AND status IN {TERMINAL}")[0][0])
            log(f"  {tenant}: only {done} of {expected} deliveries settled; giving up")
            return done
        herald.procs.check_alive()
        time.sleep(0.1)


def delivery_stats(tenant: str) -> dict:
    row = psql(f"""
        SELECT count(*) FILTER (WHERE d.status = 'sent'), count(*) FILTER (WHERE d.status <> 'sent'),
            extract(epoch FROM max(d.updated_at) - min(n.created_at)),
            percentile_cont(ARRAY[0.5, 0.99, 0.999]) WITHIN GROUP (ORDER BY extract(epoch FROM d.updated_at - n.created_at))
        FROM deliveries d JOIN notifications n ON n.id = d.notification_id WHERE d.tenant = '{tenant}'""")[0]
    sent, other = int(row[0] or 0), int(row[1] or 0)
    span = float(row[2] or 0)
    settled = [round(float(x) * 1000, 1) for x in row[3].strip("{}").split(",")] if row[3] else [0, 0, 0]
    call = psql(f"""
        SELECT percentile_cont(ARRAY[0.5, 0.99, 0.999]) WITHIN GROUP (ORDER BY extract(epoch FROM a.started_at - n.created_at))
        FROM attempts a JOIN notifications n ON n.id = a.notification_id WHERE a.tenant = '{tenant}' AND a.number = 1""")[0][0]
    to_call = [round(float(x) * 1000, 1) for x in call.strip("{}").split(",")] if call else [0, 0, 0]
    return {"sent": sent, "not_sent": other, "span_s": round(span, 3), "end_to_end_rate": round(sent / span, 1) if span else 0,
            "accept_to_provider_call_ms": dict(zip(("p50", "p99", "p999"), to_call)),
            "accept_to_settled_ms": dict(zip(("p50", "p99", "p999"), settled))}


def table_rows() -> dict:
    row = psql("SELECT (SELECT count(*) FROM notifications), (SELECT count(*) FROM deliveries), (SELECT count(*) FROM attempts)",
               timeout=600)[0]
    return dict(zip(("notifications", "deliveries", "attempts"), map(int, row)))


def prefill(attempts: int, days: int) -> None:
    """Past notifications as the pipeline leaves them: sent after one failed attempt. Ids are UUIDv7 of
    their instant (so each lands in its day's partition), every tenth has an idempotency key. Loaded
    in one chunk per day; foreign-key triggers are skipped (the rows are consistent by construction)."""
    notifications = attempts // 2
    per_day = max(1, notifications // days)
    psql(f"SELECT herald_ensure_partitions((now() AT TIME ZONE 'UTC')::date - {days}, (now() AT TIME ZONE 'UTC')::date - 1)")
    job = json.dumps({"delivery_id": "x", "channel": "webhook", "to": {"webhook_url": "https://example.test/hooks/x"},
                      "message": {"subject": "Bench", "text": "Hello from scripts/bench prefill " * 4}}).replace("'", "''")
    for day in range(days, 0, -1):
        first = (days - day) * per_day
        count = per_day if day > 1 else notifications - first
        ids = f"""
            SELECT i, t, lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0') AS ms
            FROM (SELECT i, date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '{day} days'
                      + (i - {first}) * (interval '86399 seconds' / {count}) AS t
                  FROM generate_series({first}, {first + count - 1}) AS i) AS g"""
        psql(f"""
            SET session_replication_role = replica;
            SET synchronous_commit = off;
            WITH g AS MATERIALIZED ({ids}), n AS (
                INSERT INTO notifications (id, created_at, tenant, idempotency_key, config_version, request)
                SELECT (ms || '70' || lpad(to_hex(i), 18, '0'))::uuid, t, 'prefill', CASE WHEN i % 10 = 0 THEN 'prefill-' || i END, 'v',
                    jsonb_build_object('channel', 'webhook', 'to', jsonb_build_object('webhook_url', 'https://example.test/hooks/' || i),
                        'message', jsonb_build_object('subject', 'Bench', 'text', 'Hello from scripts/bench'),
                        'metadata', jsonb_build_object('source', 'prefill', 'customer', 'c-' || (i % 20000)))
                FROM g
            ), k AS (
                INSERT INTO idempotency_keys (tenant, key, notification_id)
                SELECT 'prefill', 'prefill-' || i, (ms || '70' || lpad(to_hex(i), 18, '0'))::uuid FROM g WHERE i % 10 = 0
            ), d AS (
                INSERT INTO deliveries (id, notification_id, tenant, channel, status, attempt_count, job, created_at, updated_at)
                SELECT (ms || '7d' || lpad(to_hex(i), 18, '0'))::uuid, (ms || '70' || lpad(to_hex(i), 18, '0'))::uuid, 'prefill',
                    'webhook', 'sent', 2, '{job}', t, t + interval '31 seconds'
                FROM g
            )
            INSERT INTO attempts (delivery_id, notification_id, tenant, channel, provider, number, started_at, finished_at,
                outcome, http_status, error, worker)
            SELECT (ms || '7d' || lpad(to_hex(i), 18, '0'))::uuid, (ms || '70' || lpad(to_hex(i), 18, '0'))::uuid, 'prefill',
                'webhook', 'primary', a.number, t + a.number * interval '1 second', t + a.number * interval '1 second' + interval '40 ms',
                CASE a.number WHEN 1 THEN 'transient_failure' ELSE 'success' END, CASE a.number WHEN 1 THEN 503 ELSE 200 END,
                CASE a.number WHEN 1 THEN 'HTTP 503' END, 'worker-prefill'
            FROM g, (VALUES (1), (2)) AS a(number)""", timeout=3600)
        if day % 5 == 0:
            log(f"  … {days - day + 1} of {days} days loaded")
    psql("VACUUM ANALYZE", timeout=3600)
    psql("CHECKPOINT", timeout=600)


def delete_one_day_rolled_back() -> dict:
    """What retention would cost row by row: DELETE the oldest loaded day's attempts, deliveries,
    notifications and keys (triggers off, as an operator would have to), timed, then ROLLBACK."""
    day = psql("""SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                  WHERE i.inhparent = 'notifications'::regclass AND c.relname ~ '_p[0-9]{8}$' ORDER BY c.relname LIMIT 1""")[0][0]
    suffix = day.removeprefix("notifications_")
    rows = int(psql(f"SELECT count(*) FROM attempts_{suffix}")[0][0])
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", PG_URL], input=f"""
        BEGIN;
        SET LOCAL session_replication_role = replica;
        SELECT clock_timestamp() AS started \\gset
        DELETE FROM idempotency_keys k USING notifications_{suffix} n WHERE k.notification_id = n.id;
        DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries_{suffix});
        DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries_{suffix});
        DELETE FROM notifications WHERE id IN (SELECT id FROM notifications_{suffix});
        SELECT extract(epoch FROM clock_timestamp() - :'started'::timestamptz);
        ROLLBACK;
        """, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr.strip()[-400:]}")
    seconds = float(out.stdout.strip().splitlines()[-1])
    return {"partition": suffix, "attempts": rows, "seconds": round(seconds, 3)}


def cpu_per_notification(before: dict, after: dict, count: int, extra: dict) -> dict:
    result = {}
    for role in ("gateway", "worker", "sink", "postgres", "rabbitmq"):
        if role in after:
            result[role] = round((after[role] - before.get(role, 0)) * 1e6 / max(count, 1), 1)
    for role, seconds in extra.items():
        result[role] = round(seconds * 1e6 / max(count, 1), 1)
    ours = sum(result.values())
    machine = round((after["machine"] - before["machine"]) * 1e6 / max(count, 1), 1)
    result["total_measured"] = round(ours, 1)
    result["machine_all_processes"] = machine
    result["window_s"] = round(after["wall"] - before["wall"], 3)
    return result


def database_counters() -> dict:
    """The WAL position and the updates of `deliveries` (all, and heap-only: those that wrote no index entry)."""
    row = psql("SELECT pg_current_wal_lsn()::text, coalesce(sum(n_tup_upd), 0)::int8, coalesce(sum(n_tup_hot_upd), 0)::int8 "
               "FROM pg_stat_user_tables WHERE relname = 'deliveries' OR relname LIKE 'deliveries\\_%'")[0]
    return {"lsn": row[0], "updates": int(row[1]), "hot_updates": int(row[2])}


def database_work(before: dict, count: int) -> dict:
    """WAL bytes per notification and the share of HOT updates of `deliveries` since `before`. Read a
    moment after the phase: each PostgreSQL backend reports its table counters at most once a second."""
    time.sleep(1.5)
    after = database_counters()
    wal = int(psql(f"SELECT pg_wal_lsn_diff('{after['lsn']}', '{before['lsn']}')::int8")[0][0])
    updates = after["updates"] - before["updates"]
    hot = after["hot_updates"] - before["hot_updates"]
    return {"wal_bytes_per_notification": round(wal / max(count, 1)), "deliveries_updates": updates,
            "deliveries_hot_share": round(hot / updates, 3) if updates > 0 else None}


def snapshot(herald: Herald) -> dict:
    values = herald.cpu()
    values["wall"] = time.monotonic()
    return values


# ================================================================================================
# Phases
# ================================================================================================

class Bench:
    def __init__(self, settings: dict, run_id: str) -> None:
        self.s = settings
        self.run_id = run_id
        self.herald = Herald()
        self.bodies = RUN_DIR / "bodies"
        self.bodies.mkdir(parents=True, exist_ok=True)
        self.single_body = notification_body(self.bodies / "single.json")
        self.batch_body = notification_body(self.bodies / "batch.json", batch=settings["batch_size"])
        self.notifications_through_first_set = 0

    def targets(self) -> list[str]:
        return [arg for port in self.herald.ports() for arg in ("--target", f"127.0.0.1:{port}")]

    def baseline(self) -> dict:
        n = self.s["baseline_n"]
        log(f"baseline: durable-baseline -n {n} --batch 100")
        url = re.match(r"postgres://([^@]+)@([^:/]+):(\d+)/(\w+)", PG_URL)
        conninfo = f"host={url.group(2)} port={url.group(3)} user={url.group(1)} dbname={url.group(4)}"
        before = snapshot(self.herald)
        out = subprocess.run([str(TOOLS / "durable-baseline"), "--pg", conninfo, "--amqp-host", "127.0.0.1",
                              "--amqp-port", ENV.get("HERALD_AMQP_PORT", "5672"), "-n", str(n), "--batch", "100",
                              "--document", str(self.single_body)], capture_output=True, text=True, timeout=600)
        after = snapshot(self.herald)
        if out.returncode != 0:
            raise RuntimeError(f"durable-baseline failed: {out.stderr[-400:]}")
        result = json.loads(out.stdout)
        result["cpu_us_per_notification"] = cpu_per_notification(before, after, n, {"baseline_program": result["cpu_s"]})
        log(f"  baseline: {result['rate']:.0f}/s")
        return result

    def closed(self, name: str, requests: int, concurrency: int, batch: int = 0, count_first_set: bool = False) -> dict:
        tenant = f"{name}-{self.run_id}"
        key = self.herald.key(tenant)
        body = self.batch_body if batch else self.single_body
        path = "/v1/notifications/batch" if batch else "/v1/notifications"
        per_request = batch or 1
        requests_to_send = max(1, requests // per_request)
        log(f"{name}: {requests_to_send} POST {path} x{per_request}, {concurrency} connections, {self.herald.gateways} gateway(s)")
        sink_before = sink_received()
        database_before = database_counters()
        before = snapshot(self.herald)
        load = loadgen([*self.targets(), "--path", path, "--body", str(body), "--header", f"Authorization: Bearer {key}",
                        "--requests", str(requests_to_send), "--concurrency", str(concurrency), "--timeout", "30"],
                       timeout=1800)
        accepted = load["statuses"].get("202", 0) * per_request
        settled = wait_settled(self.herald, tenant, accepted, self.s["drain_timeout"], sink_before)
        after = snapshot(self.herald)
        if count_first_set:
            self.notifications_through_first_set += accepted
        stats = delivery_stats(tenant)
        result = {
            "requests": requests_to_send, "notifications_per_request": per_request, "concurrency": concurrency,
            "accepted": accepted, "settled": settled, "statuses": load["statuses"], "errors": load["errors"],
            "accepted_per_s": round(load["achieved_rate"] * per_request, 1), "requests_per_s": load["achieved_rate"],
            "accept_latency_ms": {k: round(load["latency_us"]["from_send"][k] / 1000, 2) for k in ("p50", "p99", "p999", "max")},
            **stats,
            "cpu_us_per_notification": cpu_per_notification(before, after, accepted, {"loadgen": load["cpu_s"]}),
            "database": database_work(database_before, accepted),
        }
        log(f"  {name}: accepted {result['accepted_per_s']:.0f}/s, end to end {stats['end_to_end_rate']:.0f}/s, "
            f"gateway {result['cpu_us_per_notification'].get('gateway')} µs, worker {result['cpu_us_per_notification'].get('worker')} µs")
        return result

    def rate(self, rate: int) -> dict:
        seconds = self.s["rate_seconds"]
        tenant = f"rate{rate}-{self.run_id}"
        key = self.herald.key(tenant)
        log(f"rate {rate}/s for {seconds} s (open loop)")
        sink_before = sink_received()
        database_before = database_counters()
        before = snapshot(self.herald)
        load = loadgen([*self.targets(), "--path", "/v1/notifications", "--body", str(self.single_body),
                        "--header", f"Authorization: Bearer {key}", "--rate", str(rate), "--duration", str(seconds),
                        "--connections", "256", "--timeout", "30"], timeout=seconds + 120)
        accepted = load["statuses"].get("202", 0)
        settled = wait_settled(self.herald, tenant, accepted, self.s["drain_timeout"], sink_before)
        after = snapshot(self.herald)
        self.notifications_through_first_set += accepted
        stats = delivery_stats(tenant)
        latency = load["latency_us"]["from_due"]
        result = {
            "offered_per_s": rate, "achieved_per_s": load["achieved_rate"], "seconds": seconds, "accepted": accepted,
            "settled": settled, "statuses": load["statuses"], "errors": load["errors"],
            "accept_latency_ms": {k: round(latency[k] / 1000, 2) for k in ("p50", "p90", "p99", "p999", "max")},
            **stats,
            "cpu_us_per_notification": cpu_per_notification(before, after, accepted, {"loadgen": load["cpu_s"]}),
            "database": database_work(database_before, accepted),
        }
        log(f"  {rate}/s: p50 {result['accept_latency_ms']['p50']} ms, p99 {result['accept_latency_ms']['p99']} ms, "
            f"p99.9 {result['accept_latency_ms']['p999']} ms")
        return result

    def growth(self, attempts: int, days: int, keep_days: int) -> dict:
        """Accept and delivery rates on the current database, then again with `attempts` more attempts
        (half as many notifications and deliveries, two attempts each) spread over the `days` days
        before today, then one retention pass keeping `keep_days` days, timed, with an open-loop load
        running through it; and, for comparison, the row-by-row DELETE of one day (rolled back)."""
        result: dict = {"attempts_loaded": attempts, "days": days, "keep_days": keep_days}
        result["empty"] = {"single": self.closed("growth-empty-single", self.s["single_n"], 64),
                           "batch": self.closed("growth-empty-batch", self.s["batch_n"], self.s["batch_c"], batch=self.s["batch_size"])}
        result["rows_before"] = table_rows()
        log(f"growth: loading {attempts} attempts over the {days} days before today")
        started = time.monotonic()
        prefill(attempts, days)
        result["load_s"] = round(time.monotonic() - started, 1)
        result["rows_loaded"] = table_rows()
        result["database_bytes"] = int(psql("SELECT pg_database_size(current_database())")[0][0])
        log(f"  loaded in {result['load_s']} s: {result['rows_loaded']}, {result['database_bytes'] >> 20} MiB")
        result["full"] = {"single": self.closed("growth-full-single", self.s["single_n"], 64),
                          "batch": self.closed("growth-full-batch", self.s["batch_n"], self.s["batch_c"], batch=self.s["batch_size"])}
        result["delete_one_day"] = delete_one_day_rolled_back()
        log(f"  row-by-row DELETE of one day (rolled back): {result['delete_one_day']}")
        result["retention"] = self.retention_under_load(keep_days)
        result["rows_after_retention"] = table_rows()
        result["database_bytes_after_retention"] = int(psql("SELECT pg_database_size(current_database())")[0][0])
        return result

    def retention_under_load(self, keep_days: int) -> dict:
        """`herald retention --days N` while single POSTs arrive at 500/s (open loop)."""
        rate, seconds = 500, 12
        tenant = f"growth-retention-{self.run_id}"
        key = self.herald.key(tenant)
        load = subprocess.Popen([str(TOOLS / "loadgen"), *self.targets(), "--path", "/v1/notifications", "--body", str(self.single_body),
                                 "--header", f"Authorization: Bearer {key}", "--rate", str(rate), "--duration", str(seconds),
                                 "--connections", "256", "--timeout", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(4)
        started = time.monotonic()
        out = subprocess.run([HERALD, "retention", "--days", str(keep_days)], capture_output=True, text=True, timeout=900,
                             env={**ENV, **self.herald.env})
        elapsed = time.monotonic() - started
        stdout, stderr = load.communicate(timeout=seconds + 120)
        if out.returncode != 0:
            raise RuntimeError(f"herald retention failed: {out.stderr[-400:]}")
        if load.returncode != 0:
            raise RuntimeError(f"loadgen failed: {stderr[-400:]}")
        latency = json.loads(stdout)["latency_us"]["from_due"]
        lines = out.stdout.splitlines()
        dropped = [line for line in lines if line.startswith("dropped ")]
        seconds_each = [float(m.group(1)) for m in (re.search(r", ([0-9.]+) s$", line) for line in dropped) if m]
        rows = sum(int(m.group(1)) for m in (re.search(r"~(\d+) rows", line) for line in dropped) if m)
        result = {"elapsed_s": round(elapsed, 2), "days_dropped": len(dropped), "rows_dropped_estimate": rows,
                  "per_day_s": {"max": max(seconds_each, default=0), "mean": round(sum(seconds_each) / max(len(seconds_each), 1), 4)},
                  "kept": [line for line in lines if line.startswith("kept ")],
                  "load": {"offered_per_s": rate, "seconds": seconds,
                           "accept_latency_ms": {k: round(latency[k] / 1000, 2) for k in ("p50", "p99", "p999", "max")}}}
        log(f"  retention: {result['days_dropped']} days, ~{rows} rows in {result['elapsed_s']} s; "
            f"accept p99 {result['load']['accept_latency_ms']['p99']} ms, max {result['load']['accept_latency_ms']['max']} ms at {rate}/s")
        return result

    def memory_growth(self, total: int, step: int) -> list[dict]:
        """RSS of the gateway and the worker after every `step` notifications (single POSTs), up to
        `total`: memory that grows with the notifications shows as a slope, not as one number."""
        rows, sent = [], 0
        while sent < total:
            result = self.closed(f"memory{sent // step}", step, 64)
            sent += result["accepted"]
            rows.append({"notifications": sent, "processes": self.herald.memory()})
            log(f"  memory after {sent}: " + ", ".join(f"{name} {v['rss_kib'] / 1024:.1f} MiB" for name, v in sorted(rows[-1]["processes"].items())))
        return rows

    def warm_up(self) -> None:
        if self.s["warmup"]:
            self.closed("warmup", self.s["warmup"], 32, count_first_set=True)


def start_profiles(herald: Herald) -> list[tuple[str, subprocess.Popen, Path]]:
    """perf record (cpu-clock samples with call graphs) of the first gateway and worker."""
    profilers = []
    for role in ("gateway", "worker"):
        pids = herald.procs.pids(role)
        if not pids:
            continue
        data = RUN_DIR / f"profile-{role}.data"
        popen = subprocess.Popen(["perf", "record", "-q", "-F", "499", "-g", "-e", "cpu-clock", "-p", str(pids[0]), "-o", str(data)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        profilers.append((role, popen, data))
    return profilers


def stop_profiles(profilers: list[tuple[str, subprocess.Popen, Path]]) -> None:
    for role, popen, data in profilers:
        popen.send_signal(signal.SIGINT)
        try:
            popen.wait(timeout=60)
        except subprocess.TimeoutExpired:
            popen.kill()
        for sort, suffix in (("dso", "dso"), ("dso,symbol", "symbols")):
            report = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", sort, "--stdio",
                                     "--percent-limit", "0.5", "-g", "none"], capture_output=True, text=True, timeout=300)
            text = report.stdout
            demangled = subprocess.run(["swift", "demangle", "--simplified"], input=text, capture_output=True, text=True,
                                       timeout=120)
            (RUN_DIR / f"profile-{role}-{suffix}.txt").write_text(demangled.stdout if demangled.returncode == 0 else text)
        log(f"  profile of the {role}: {RUN_DIR / f'profile-{role}-symbols.txt'}")


def machine_facts() -> dict:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    def first_line(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    def package(name: str) -> str:
        return first_line(["dpkg-query", "-W", "-f", "${Version}", name])
    commit = first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    settings = {row[0]: row[1] for row in psql(
        "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method')")}
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "cpu": model, "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30, 1),
        "kernel": platform.release(), "swift": first_line(["swift", "--version"]),
        "postgresql": package("postgresql-15"), "rabbitmq": package("rabbitmq-server"),
        "postgresql_settings": settings, "load_average_at_start": list(os.getloadavg()),
    }


# ================================================================================================
# Report
# ================================================================================================

def fmt(value, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def cpu_row(label: str, cpu: dict) -> str:
    cols = ("gateway", "worker", "sink", "postgres", "rabbitmq", "loadgen", "baseline_program", "total_measured",
            "machine_all_processes")
    return f"| {label} | " + " | ".join(fmt(cpu.get(c), 0) for c in cols) + " |"


def phase_rows(results: dict, key: str, row) -> list[str]:
    """`row(label, phase[key])` for the closed-loop phases, then the fixed rates, where the phase has `key`."""
    phases = [(name, results[name]) for name in ("single", "batch") if name in results]
    phases += [(f"{x['offered_per_s']}/s", x) for x in results.get("rates", [])]
    return [row(label, phase[key]) for label, phase in phases if key in phase]


def database_row(label: str, work: dict) -> str:
    share = work.get("deliveries_hot_share")
    return (f"| {label} | {fmt(work.get('wal_bytes_per_notification'), 0)} | {fmt(work.get('deliveries_updates'), 0)} | "
            f"{'–' if share is None else f'{share * 100:.0f} %'} |")


def markdown(report: dict) -> str:
    m = report["machine"]
    r = report["results"]
    lines = [f"# Herald benchmark{' (quick)' if report['quick'] else ''}: {report.get('title', '')}".rstrip(": "), ""]
    lines += [
        f"- date {m['date']}, commit {m['commit']}",
        f"- machine: {m['cores']} × {m['cpu']}, {m['memory_gib']} GiB, Linux {m['kernel']}; {m['swift']}",
        f"- PostgreSQL {m['postgresql']} ({', '.join(f'{k}={v}' for k, v in sorted(m['postgresql_settings'].items()))}), "
        f"RabbitMQ {m['rabbitmq']}; everything on this one machine, sink and load generator included",
        f"- load average at start {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])} "
        "(the machine is shared: compare ratios and CPU per notification, not absolute rates)",
        "",
    ]
    base = r.get("baseline", [])
    ceiling = max((b["rate"] for b in base), default=0)
    if base:
        lines += ["## Durable-work baseline (the ceiling)", "",
                  "| run | notifications | batch | notifications/s |", "| --- | ---: | ---: | ---: |"]
        for i, b in enumerate(base):
            lines.append(f"| {('start', 'end')[min(i, 1)]} | {fmt(b['count'])} | {b['batch']} | {fmt(b['rate'])} |")
        lines.append("")
    summary = []
    for name, label in (("single", "single POSTs (64 connections)"), ("batch", "batch POSTs of 100 (8 connections)")):
        if name in r:
            x = r[name]
            ratio = x["end_to_end_rate"] / ceiling if ceiling else None
            summary.append(f"| {label} | {fmt(x['accepted_per_s'])} | {fmt(x['end_to_end_rate'])} | {fmt(ratio, 3)} | "
                           f"{fmt(x['accept_latency_ms']['p50'], 1)} / {fmt(x['accept_latency_ms']['p99'], 1)} | "
                           f"{fmt(x['accept_to_provider_call_ms']['p50'], 0)} / {fmt(x['accept_to_provider_call_ms']['p99'], 0)} |")
    if summary:
        lines += ["## Throughput", "",
                  "| load | accepted/s | end to end/s | ratio to baseline | accept p50 / p99 ms | accept → provider call p50 / p99 ms |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |", *summary, "",
                  "End to end: first acceptance to last delivery settled `sent`, over the notifications of the phase. "
                  "Closed loop: accept latencies here are per connection (see the fixed rates for open-loop latencies).", ""]
    if "rates" in r:
        lines += ["## Accept latency at fixed offered rates (open loop)", "",
                  "| offered/s | achieved/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | accept → provider call p50 / p99 ms |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for x in r["rates"]:
            a = x["accept_latency_ms"]
            errors = sum(v for k, v in x["errors"].items()) + sum(v for k, v in x["statuses"].items() if k != "202")
            lines.append(f"| {fmt(x['offered_per_s'])} | {fmt(x['achieved_per_s'])} | {fmt(a['p50'], 1)} | {fmt(a['p90'], 1)} | "
                         f"{fmt(a['p99'], 1)} | {fmt(a['p999'], 1)} | {fmt(a['max'], 1)} | {errors} | "
                         f"{fmt(x['accept_to_provider_call_ms']['p50'], 0)} / {fmt(x['accept_to_provider_call_ms']['p99'], 0)} |")
        lines += ["", "bench/tools/loadgen: request i is due at start + i/rate; latency runs from that due time to the "
                  "answer, so time a request spent waiting for a free connection counts.", ""]
    cpu_lines = phase_rows(r, "cpu_us_per_notification", cpu_row)
    for i, b in enumerate(base):
        cpu_lines.append(cpu_row(f"baseline ({('start', 'end')[min(i, 1)]})", b["cpu_us_per_notification"]))
    if cpu_lines:
        lines += ["## CPU per notification (µs, from /proc)", "",
                  "| phase | gateway | worker | sink | PostgreSQL | RabbitMQ | load generator | baseline program | sum | whole machine |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", *cpu_lines, "",
                  "Per process: utime + stime (and reaped children's) between the start of the load and the last settled "
                  "delivery, divided by the notifications. *Whole machine*: every process on the box in that window "
                  "(the difference to *sum* is other work on the shared machine).", ""]
    database_lines = phase_rows(r, "database", database_row)
    if database_lines:
        lines += ["## PostgreSQL's writes per notification", "",
                  "| phase | WAL bytes per notification | updates of deliveries | of them HOT (no index entries) |",
                  "| --- | ---: | ---: | ---: |", *database_lines, "",
                  "WAL: `pg_current_wal_lsn()` before and after the phase (everything the server wrote meanwhile). "
                  "HOT: `pg_stat_user_tables.n_tup_hot_upd` over `n_tup_upd` of the deliveries partitions.", ""]
    if "memory" in r:
        lines += ["## Memory", "", f"After {fmt(r['memory']['notifications'])} notifications through one gateway and one worker:", "",
                  "| process | RSS MiB | peak RSS MiB |", "| --- | ---: | ---: |"]
        for name, values in sorted(r["memory"]["processes"].items()):
            lines.append(f"| {name} | {values['rss_kib'] / 1024:.1f} | {values['peak_rss_kib'] / 1024:.1f} |")
        lines.append("")
    if "memory_growth" in r:
        names = sorted(r["memory_growth"][0]["processes"]) if r["memory_growth"] else []
        lines += ["## Memory as notifications go through", "",
                  "RSS (and its anonymous part: heap, stacks) of one gateway and one worker, single POSTs in steps:", "",
                  "| notifications | " + " | ".join(f"{n} RSS / anon MiB" for n in names) + " |",
                  "| ---: | " + " | ".join("---:" for _ in names) + " |"]
        for row in r["memory_growth"]:
            cells = [f"{row['processes'][n]['rss_kib'] / 1024:.1f} / {row['processes'][n].get('anon_kib', 0) / 1024:.1f}" for n in names]
            lines.append(f"| {fmt(row['notifications'])} | " + " | ".join(cells) + " |")
        lines.append("")
    if "scaling" in r:
        lines += ["## Scaling (single POSTs, 64 connections over the gateways)", "",
                  "| workers | gateways | accepted/s | end to end/s | ratio to baseline | gateway µs | worker µs |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for x in r["scaling"]:
            cpu = x["cpu_us_per_notification"]
            ratio = x["end_to_end_rate"] / ceiling if ceiling else None
            lines.append(f"| {x['workers']} | {x['gateways']} | {fmt(x['accepted_per_s'])} | {fmt(x['end_to_end_rate'])} | "
                         f"{fmt(ratio, 3)} | {fmt(cpu.get('gateway'))} | {fmt(cpu.get('worker'))} |")
        lines.append("")
    if "growth" in r:
        g = r["growth"]
        lines += [f"## Cost as the data grows ({fmt(g['attempts_loaded'])} attempts loaded over {g['days']} days)", "",
                  "| load | accepted/s empty | accepted/s loaded | ratio | end to end/s empty | end to end/s loaded | ratio | "
                  "gateway µs empty / loaded | worker µs empty / loaded | PostgreSQL µs empty / loaded |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name in ("single", "batch"):
            e, f = g["empty"][name], g["full"][name]
            ce, cf = e["cpu_us_per_notification"], f["cpu_us_per_notification"]
            lines.append(f"| {name} | {fmt(e['accepted_per_s'])} | {fmt(f['accepted_per_s'])} | "
                         f"{fmt(f['accepted_per_s'] / e['accepted_per_s'] if e['accepted_per_s'] else None, 2)} | "
                         f"{fmt(e['end_to_end_rate'])} | {fmt(f['end_to_end_rate'])} | "
                         f"{fmt(f['end_to_end_rate'] / e['end_to_end_rate'] if e['end_to_end_rate'] else None, 2)} | "
                         f"{fmt(ce.get('gateway'))} / {fmt(cf.get('gateway'))} | {fmt(ce.get('worker'))} / {fmt(cf.get('worker'))} | "
                         f"{fmt(ce.get('postgres'))} / {fmt(cf.get('postgres'))} |")
        rl, ra = g["rows_loaded"], g["rows_after_retention"]
        ret = g["retention"]
        d = g["delete_one_day"]
        lines += ["", f"Loaded in {fmt(g['load_s'])} s: {fmt(rl['notifications'])} notifications, {fmt(rl['deliveries'])} deliveries, "
                  f"{fmt(rl['attempts'])} attempts; database {fmt(g['database_bytes'] / 2**20)} MiB.", "",
                  "| retention (keep {0} days) | |".format(g["keep_days"]), "| --- | ---: |",
                  f"| days dropped | {ret['days_dropped']} |",
                  f"| rows dropped (planner estimate) | {fmt(ret['rows_dropped_estimate'])} |",
                  f"| whole pass (`herald retention`) | {fmt(ret['elapsed_s'], 2)} s |",
                  f"| one day, mean / max | {fmt(ret['per_day_s']['mean'] * 1000, 1)} / {fmt(ret['per_day_s']['max'] * 1000, 1)} ms |",
                  f"| the same day row by row (DELETE, rolled back): {fmt(d['attempts'])} attempts and their rows | "
                  f"{fmt(d['seconds'] * 1000, 0)} ms |",
                  f"| accept latency at {ret['load']['offered_per_s']}/s through the pass, p50 / p99 / p99.9 / max | "
                  f"{' / '.join(fmt(ret['load']['accept_latency_ms'][k], 1) for k in ('p50', 'p99', 'p999', 'max'))} ms |",
                  f"| rows left | {fmt(ra['notifications'])} notifications, {fmt(ra['attempts'])} attempts |",
                  f"| database after | {fmt(g['database_bytes_after_retention'] / 2**20)} MiB |", ""]
        if ret["kept"]:
            lines += ["Kept: " + "; ".join(ret["kept"]), ""]
    return "\n".join(lines) + "\n"


# ================================================================================================

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", help="report path without extension (default $HERALD_RUN_DIR/bench/report)")
    parser.add_argument("--title", default="")
    parser.add_argument("--only", help="comma-separated phases: " + ", ".join(PHASES))
    parser.add_argument("--keep-services", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="perf record the gateway and the worker during the single phase (reports beside the report)")
    parser.add_argument("--check-args", action="store_true")
    args = parser.parse_args(argv)
    if args.only:
        unknown = set(args.only.split(",")) - set(PHASES)
        if unknown:
            parser.error(f"unknown phase(s) {', '.join(sorted(unknown))}; known: {', '.join(PHASES)}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.check_args:
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    settings = QUICK if args.quick else FULL
    # The growth phase loads millions of rows: only in a full run, or asked for with --only.
    phases = args.only.split(",") if args.only else [p for p in PHASES if not (args.quick and p in ("growth", "memory"))]
    run_id = time.strftime("%Y%m%d%H%M%S")
    bench = Bench(settings, run_id)
    started = time.monotonic()
    report = {"quick": args.quick, "title": args.title, "machine": machine_facts(), "settings": settings, "results": {}}
    results = report["results"]
    try:
        if "baseline" in phases:
            results["baseline"] = [bench.baseline()]
        if {"single", "batch", "rates"} & set(phases):
            bench.herald.start(workers=1, gateways=1)
            bench.warm_up()
            if "single" in phases:
                profilers = start_profiles(bench.herald) if args.profile else []
                results["single"] = bench.closed("single", settings["single_n"], 64, count_first_set=True)
                stop_profiles(profilers)
            if "batch" in phases:
                results["batch"] = bench.closed("batch", settings["batch_n"], settings["batch_c"], batch=settings["batch_size"],
                                                count_first_set=True)
            if "rates" in phases:
                results["rates"] = [bench.rate(rate) for rate in settings["rates"]]
            results["memory"] = {"notifications": bench.notifications_through_first_set, "processes": bench.herald.memory()}
            bench.herald.stop()
        if "scaling" in phases:
            rows = []
            for workers, gateways in settings["scaling"]:
                bench.herald.start(workers=workers, gateways=gateways)
                bench.closed(f"warm{workers}x{gateways}", 300, 32)
                row = bench.closed(f"scale{workers}x{gateways}", settings["scaling_n"], 64)
                row.update(workers=workers, gateways=gateways)
                rows.append(row)
                bench.herald.stop()
            if "single" in results and not any(r["workers"] == 1 and r["gateways"] == 1 for r in rows):
                rows.insert(0, {**results["single"], "workers": 1, "gateways": 1})
            results["scaling"] = sorted(rows, key=lambda r: (r["gateways"], r["workers"]))
        if "memory" in phases:
            bench.herald.start(workers=1, gateways=1)
            bench.warm_up()
            results["memory_growth"] = bench.memory_growth(settings["memory_n"], settings["memory_step"])
            bench.herald.stop()
        if "growth" in phases:
            bench.herald.start(workers=1, gateways=1)
            bench.warm_up()
            results["growth"] = bench.growth(settings["growth_attempts"], settings["growth_days"], settings["growth_keep_days"])
            bench.herald.stop()
        if "baseline" in phases and not args.quick:
            results["baseline"].append(bench.baseline())
    except Interrupted as signal_received:
        log(f"interrupted ({signal_received}); stopping")
        return 130
    finally:
        bench.herald.stop()
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    out = Path(args.out) if args.out else RUN_DIR / "bench" / "report"
    if not out.is_absolute():
        out = ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    sys.stdout.write(markdown(report))
    log(f"report: {out.with_suffix('.md').relative_to(ROOT) if out.is_relative_to(ROOT) else out} (.json beside it), "
        f"{report['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
