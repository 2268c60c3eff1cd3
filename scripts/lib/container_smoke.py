#!/usr/bin/env python3
"""The container smoke run of scripts/container-smoke: notifications through the gateway containers.

scripts/container-smoke brings the compose stack up and runs this file. It sends N notifications
through the API the stack publishes (the edge proxy in front of two gateway containers) to the
webhook-sink container, scales the webhook worker to 3 replicas once a third of them are accepted,
SIGKILLs one worker container when two thirds are, waits until every accepted notification is
terminal in the stack's PostgreSQL and prints the counts. Exit 1 when anything accepted was lost or
not terminal in time. Clients, retries and SQL are the fault harness's (scripts/lib/faults.py).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import faults  # noqa: E402  (the fault harness: Load, Submission, DB, SQL helpers)


def log(message: str) -> None:
    print(f"[smoke] {message}", file=sys.stderr, flush=True)


def compose(*args: str, timeout: float = 300.0, check: bool = True) -> str:
    command = os.environ["HERALD_COMPOSE"].split() + list(args)
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def worker_containers() -> list[str]:
    return [line for line in compose("ps", "-q", "worker-webhook").split() if line]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--api-port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    args = parser.parse_args()

    run_id = f"smoke-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"
    submissions = []
    for i in range(args.n):
        marker = f"{run_id}-{i:05d}"
        body = json.dumps({
            "channel": "webhook",
            "to": {"webhook_url": f"http://webhook-sink:9099/hooks/{marker}"},
            "message": {"subject": "Container smoke", "text": f"notification {i}"},
            "metadata": {"run": run_id, "marker": marker},
            "idempotency_key": marker,
        }, separators=(",", ":")).encode()
        submissions.append(faults.Submission(index=i, marker=marker, key=marker, body=body))

    started = time.monotonic()
    load = faults.Load(args.api_port, submissions, duration=max(10.0, args.n / 60), concurrency=16,
                       api_key=args.api_key)
    log(f"sending {args.n} notifications through 127.0.0.1:{args.api_port} (edge -> 2 gateway containers), run {run_id}")
    load.start()

    def accepted() -> int:
        return sum(1 for s in submissions if s.accepted_id)

    scaled_at = killed = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and any(t.is_alive() for t in load._threads):
        if scaled_at is None and accepted() >= args.n // 3:
            log(f"{accepted()} accepted: scaling worker-webhook to 3 replicas")
            compose("up", "-d", "--no-deps", "--no-build", "--no-recreate", "--scale", "worker-webhook=3", "worker-webhook")
            scaled_at = time.monotonic() - started
            log(f"worker-webhook replicas: {len(worker_containers())}")
        if scaled_at is not None and killed is None and accepted() >= 2 * args.n // 3:
            victim = worker_containers()[0]
            log(f"{accepted()} accepted: docker kill (SIGKILL) worker container {victim[:12]}")
            subprocess.run(["docker", "kill", victim], check=True, capture_output=True, timeout=60)
            killed = victim
        time.sleep(0.2)
    load.join(120)
    load_seconds = time.monotonic() - started

    accepted_ids = {s.accepted_id for s in submissions if s.accepted_id}
    db = faults.DB(args.postgres_url)
    sql = f"""
        SELECT n.id, bool_and(d.id IS NOT NULL AND {faults.terminal_sql('d.status')})
        FROM notifications n LEFT JOIN deliveries d ON d.notification_id = n.id
        WHERE {faults.run_filter(run_id)} GROUP BY n.id"""
    drain_deadline = time.monotonic() + args.drain_timeout
    terminal: set = set()
    last_log = 0.0
    while time.monotonic() < drain_deadline:
        rows = db.try_query(sql) or []
        terminal = {row[0] for row in rows if row[1] == "t"}
        if accepted_ids <= terminal:
            break
        if time.monotonic() - last_log > 5:
            log(f"draining: {len(accepted_ids - terminal)} of {len(accepted_ids)} not terminal yet")
            last_log = time.monotonic()
        time.sleep(1)
    total_seconds = time.monotonic() - started

    statuses = dict(db.query(f"""
        SELECT d.status, count(*) FROM notifications n JOIN deliveries d ON d.notification_id = n.id
        WHERE {faults.run_filter(run_id)} GROUP BY d.status ORDER BY d.status"""))
    stored = int(db.query(f"SELECT count(*) FROM notifications n WHERE {faults.run_filter(run_id)}")[0][0])
    workers_seen = db.query(f"""
        SELECT count(DISTINCT a.worker) FROM notifications n JOIN deliveries d ON d.notification_id = n.id
        JOIN attempts a ON a.delivery_id = d.id WHERE {faults.run_filter(run_id)}""")[0][0]
    sink = json.loads(compose("exec", "-T", "webhook-sink", "curl", "-fsS", "http://127.0.0.1:9099/stats") or "{}")
    lost = len(accepted_ids - terminal)
    rejected = sum(1 for s in submissions if s.rejected)
    print(json.dumps({
        "run": run_id, "sent": args.n, "accepted": len(accepted_ids), "rejected": rejected, "stored": stored,
        "terminal": len(terminal & accepted_ids), "lost": lost, "statuses": statuses,
        "http": dict(load.outcomes), "sink_received": sink.get("received"),
        "worker_replicas_after_scale": len(worker_containers()), "workers_that_attempted": int(workers_seen),
        "scaled_at_s": round(scaled_at or -1, 1), "killed_container": (killed or "")[:12],
        "load_s": round(load_seconds, 1), "all_terminal_after_s": round(total_seconds, 1),
    }, indent=2), flush=True)
    ok = lost == 0 and rejected == 0 and len(accepted_ids) == args.n and scaled_at is not None and killed is not None
    print(f"container smoke: sent {args.n}, accepted {len(accepted_ids)}, terminal {len(terminal & accepted_ids)}, "
          f"lost {lost}, sink received {sink.get('received')}, in {total_seconds:.1f} s: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
