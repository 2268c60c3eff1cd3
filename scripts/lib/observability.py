"""Herald's observability, checked against the real parts (scripts/check-observability).

1. promtool check rules / test rules on deploy/prometheus/, amtool check-config on
   deploy/alertmanager/alertmanager.yml.
2. A real `herald gateway` and `herald worker` (management port) on the test database and broker,
   with three channels of this run's own (unique names, so queues and series are this run's only): a
   signed webhook channel whose receiver fails a known share of deliveries (400, permanent), a
   chat channel (the shipped slack.yaml) the operators' alerts go to, and a webhook channel no
   worker consumes at first: its queue depth and consumers, as Herald reads them from the broker,
   show in Prometheus; a second worker started later drains it.
3. `promtool check metrics` on the live /metrics of both after traffic.
4. A real Prometheus 2.42 scraping both with Herald's alert rules, and a real Alertmanager 0.25
   routing to the gateway's webhook: the attempt counts Prometheus has by outcome equal the
   database's; HeraldDeliveryFailureRatio fires; Alertmanager posts it to Herald; Herald delivers
   it to the recording receiver on the operators' channel.
5. Every panel expression of deploy/grafana/dashboards/*.json is accepted by that Prometheus.
6. Every log line of every process: one JSON object; one line per recorded attempt with the ECS
   fields and their JSON types, the types the Elasticsearch index template maps them to
   (deploy/elk/index-template.json), the recipient masked; neither the configured webhook secret,
   nor a message body, nor a recipient's URL path appears.

The only change to the shipped rules for the run: `for: 2m` of the failure-ratio alert becomes
`for: 5s` (the unit tests check the real durations), so the run takes seconds, not minutes.
"""

import base64
import glob
import http.server as httpserver
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.environ["HERALD_ROOT"]
BIN = os.environ["HERALD_BIN"]
RUN = os.path.join(os.environ["HERALD_RUN_DIR"], "observability")
PG_URL = os.environ["HERALD_TEST_POSTGRES_URL"]
AMQP_URL = os.environ["HERALD_AMQP_URL"]
# Defaults in scripts/lib/env.sh (the one place ports are defined).
PORTS = {name: int(os.environ[var]) for name, var in [
    ("gateway", "HERALD_OBS_GATEWAY_PORT"), ("worker", "HERALD_OBS_WORKER_PORT"), ("late_worker", "HERALD_OBS_LATE_WORKER_PORT"),
    ("receiver", "HERALD_OBS_RECEIVER_PORT"), ("prometheus", "HERALD_PROMETHEUS_PORT"),
    ("alertmanager", "HERALD_ALERTMANAGER_PORT"), ("alertmanager_cluster", "HERALD_ALERTMANAGER_CLUSTER_PORT"),
]}
RUN_ID = secrets.token_hex(4)
CHANNEL = f"obs-{RUN_ID}"
OPS = f"obsops-{RUN_ID}"
IDLE = f"obsidle-{RUN_ID}"
TENANT = f"obs-{RUN_ID}"
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
BODY_MARKER = f"body-marker-{secrets.token_hex(8)}"
processes = []


def say(text):
    print(f"[observability] {text}", flush=True)


def fail(text):
    say(f"FAILED: {text}")
    raise SystemExit(1)


def http(method, url, body=None, headers=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def eventually(what, check, timeout=60, interval=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as error:  # noqa: BLE001 — reported below if it never passes
            last = error
        time.sleep(interval)
    fail(f"{what} (last: {last!r})")


def psql(sql):
    out = subprocess.run(["psql", PG_URL, "-At", "-F", "\t", "-c", sql], check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def start(name, args, env=None):
    log = open(os.path.join(RUN, f"{name}.log"), "w")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    processes.append((name, process))
    return process


def stop_all():
    for name, process in reversed(processes):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for name, process in reversed(processes):
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


class Receiver(httpserver.BaseHTTPRequestHandler):
    """/ok answers 200, /fail 400 (a permanent failure), /alerts records and answers 200 "ok"."""
    received = []
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            self.received.append((self.path, dict(self.headers), body))
        status = 400 if self.path.startswith("/fail") else 200
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok" if status == 200 else b"no such hook")

    def log_message(self, *args):
        pass


def write_config():
    config = os.path.join(RUN, "config")
    os.makedirs(os.path.join(config, "channels.d"))
    shutil.copy(os.path.join(ROOT, "retry-policies.yaml"), config)
    for source, name in [("webhook.yaml", CHANNEL), ("slack.yaml", OPS), ("webhook.yaml", IDLE)]:
        text = open(os.path.join(ROOT, "channels.d", source)).read()
        text = re.sub(r"^name: .*$", f"name: {name}", text, count=1, flags=re.M)
        open(os.path.join(config, "channels.d", f"{name}.yaml"), "w").write(text)
    return config


def write_monitoring(key_file):
    rules = open(os.path.join(ROOT, "deploy/prometheus/rules/herald.yml")).read()
    fast = rules.replace("        for: 2m\n", "        for: 5s\n", 1)
    if fast == rules:
        fail("the failure-ratio rule's `for: 2m` was not found in deploy/prometheus/rules/herald.yml")
    open(os.path.join(RUN, "rules.yml"), "w").write(fast)
    open(os.path.join(RUN, "prometheus.yml"), "w").write(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [rules.yml]
alerting:
  alertmanagers: [{{static_configs: [{{targets: ["127.0.0.1:{PORTS['alertmanager']}"]}}]}}]
scrape_configs:
  - job_name: herald-gateway
    static_configs: [{{targets: ["127.0.0.1:{PORTS['gateway']}"]}}]
  - job_name: herald-worker
    static_configs: [{{targets: ["127.0.0.1:{PORTS['worker']}", "127.0.0.1:{PORTS['late_worker']}"]}}]
""")
    open(os.path.join(RUN, "alertmanager.yml"), "w").write(f"""
route:
  receiver: herald
  group_by: [alertname, channel, provider]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: herald
    webhook_configs:
      - url: http://127.0.0.1:{PORTS['gateway']}/v1/alerts/alertmanager
        send_resolved: false
        http_config:
          authorization: {{type: Bearer, credentials_file: {key_file}}}
""")


def port_taken(port):
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def main():
    shutil.rmtree(RUN, ignore_errors=True)
    os.makedirs(RUN)
    t0 = time.time()
    # 1. The rules and their unit tests.
    subprocess.run(["promtool", "check", "rules", "rules/herald.yml"], cwd=os.path.join(ROOT, "deploy/prometheus"), check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["promtool", "test", "rules", "herald-test.yml"], cwd=os.path.join(ROOT, "deploy/prometheus/tests"), check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["amtool", "check-config", os.path.join(ROOT, "deploy/alertmanager/alertmanager.yml")], check=True,
                   stdout=subprocess.DEVNULL)
    say("promtool check rules, promtool test rules, amtool check-config: passed")
    taken = [f"{name} {port}" for name, port in PORTS.items() if port_taken(port)]
    if taken:
        fail(f"ports in use (set the HERALD_*_PORT variables of scripts/lib/env.sh): {', '.join(taken)}")

    # 2. Herald.
    base_env = dict(os.environ, HERALD_POSTGRES_URL=PG_URL, HERALD_AMQP_URL=AMQP_URL)
    subprocess.run([BIN, "migrate"], env=base_env, check=True, capture_output=True)
    key = subprocess.run([BIN, "keys", "create", "--tenant", TENANT, "--scopes", "send,read", "--name", "observability", "--quiet"],
                         env=base_env, check=True, capture_output=True, text=True).stdout.strip()
    key_file = os.path.join(RUN, "api-key")
    with open(key_file, "w") as handle:
        handle.write(key)
    os.chmod(key_file, 0o600)
    server = httpserver.ThreadingHTTPServer(("127.0.0.1", PORTS["receiver"]), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver = f"http://127.0.0.1:{PORTS['receiver']}"
    env = dict(base_env, HERALD_CONFIG_DIR=write_config(), HERALD_HTTP_PORT=str(PORTS["gateway"]),
               HERALD_MANAGEMENT_PORT=str(PORTS["worker"]), HERALD_ALLOW_PRIVATE_TARGETS="1", HERALD_LOG_FORMAT="json",
               HERALD_LOG_LEVEL="info", WEBHOOK_SECRET=SECRET, HERALD_ALERT_CHANNEL=OPS, HERALD_QUEUE_SAMPLE_INTERVAL="1",
               HERALD_ALERT_TO=json.dumps({"slack_webhook_url": f"{receiver}/alerts"}))
    start("gateway", [BIN, "gateway"], env)
    start("worker", [BIN, "worker", "--channel", CHANNEL, "--channel", OPS], env)
    api = f"http://127.0.0.1:{PORTS['gateway']}"
    management = f"http://127.0.0.1:{PORTS['worker']}"
    eventually("the gateway to be ready", lambda: http("GET", f"{api}/readyz")[0] == 200)
    eventually("the worker to be ready", lambda: http("GET", f"{management}/readyz")[0] == 200)
    say(f"gateway {api}, worker management {management}, channels {CHANNEL} and {OPS}")

    # 4. Prometheus and Alertmanager, before the traffic: counters are seen from zero.
    write_monitoring(key_file)
    start("alertmanager", ["prometheus-alertmanager", f"--config.file={RUN}/alertmanager.yml", f"--storage.path={RUN}/am-data",
                           f"--web.listen-address=127.0.0.1:{PORTS['alertmanager']}",
                           f"--cluster.listen-address=127.0.0.1:{PORTS['alertmanager_cluster']}"])
    start("prometheus", ["prometheus", f"--config.file={RUN}/prometheus.yml", f"--storage.tsdb.path={RUN}/prom-data",
                         f"--web.listen-address=127.0.0.1:{PORTS['prometheus']}"])
    prometheus = f"http://127.0.0.1:{PORTS['prometheus']}"

    def targets_up():
        status, body = http("GET", f"{prometheus}/api/v1/targets")
        active = json.loads(body)["data"]["activeTargets"] if status == 200 else []
        # The late worker's target stays down until it starts.
        return len(active) == 3 and all(t["health"] == "up" for t in active if not t["scrapeUrl"].endswith(f":{PORTS['late_worker']}/metrics"))
    eventually("Prometheus to scrape the gateway and the worker", targets_up, timeout=60)
    eventually("Alertmanager to be ready", lambda: http("GET", f"http://127.0.0.1:{PORTS['alertmanager']}/-/ready")[0] == 200)

    auth = {"Authorization": f"Bearer {key}", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    ids = []
    good = bad = 0
    for wave in range(5):
        for index in range(10):
            failing = index < 4
            path = "/fail" if failing else "/ok"
            status, body = http("POST", f"{api}/v1/notifications", {
                "channel": CHANNEL, "to": {"webhook_url": f"{receiver}{path}/{wave}-{index}"},
                "message": {"text": f"{BODY_MARKER} {wave}-{index}"},
            }, auth)
            if status != 202:
                fail(f"POST /v1/notifications answered {status}: {body[:300]!r}")
            ids.append(json.loads(body)["id"])
            bad += failing
            good += not failing
        time.sleep(2)
    say(f"sent {len(ids)} notifications: {good} to a receiver answering 200, {bad} to one answering 400")

    def all_terminal():
        rows = psql(f"SELECT count(*) FROM deliveries WHERE tenant = '{TENANT}' AND channel = '{CHANNEL}' "
                    "AND status IN ('sent', 'failed')")
        return int(rows[0][0]) == len(ids)
    eventually("every delivery to end sent or failed", all_terminal, timeout=60)

    # 3. promtool check metrics on the live expositions.
    for name, url in [("gateway", f"{api}/metrics"), ("worker", f"{management}/metrics")]:
        text = urllib.request.urlopen(url, timeout=10).read()
        if b"(undocumented)" in text:
            fail(f"the {name}'s /metrics has series without help text: "
                 + ", ".join(sorted({l.split()[2] for l in text.decode().splitlines() if "(undocumented)" in l})))
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
        if check.returncode != 0:
            fail(f"promtool check metrics on the {name}'s /metrics: {check.stdout.decode()}{check.stderr.decode()}")
        families = len([l for l in text.decode().splitlines() if l.startswith("# TYPE")])
        say(f"promtool check metrics on the {name}'s live /metrics: passed ({families} series families)")

    # 4. Counts by outcome: Prometheus == the database.
    database = {outcome: int(count) for outcome, count in psql(
        f"SELECT outcome, count(*) FROM attempts WHERE tenant = '{TENANT}' AND channel = '{CHANNEL}' GROUP BY outcome")}

    def prometheus_counts():
        query = urllib.parse.quote(f'sum by (outcome) (herald_attempts_total{{channel="{CHANNEL}"}})')
        result = json.loads(http("GET", f"{prometheus}/api/v1/query?query={query}")[1])["data"]["result"]
        counts = {r["metric"]["outcome"]: int(float(r["value"][1])) for r in result}
        return counts if counts == database else None
    counts = eventually(f"Prometheus's attempt counts to equal the database's {database}", prometheus_counts, timeout=20)
    say(f"attempts by outcome, PromQL = SQL: {counts}")

    # The alert fires, Alertmanager posts it to Herald, Herald delivers it on the operators' channel.
    def firing():
        alerts = json.loads(http("GET", f"{prometheus}/api/v1/alerts")[1])["data"]["alerts"]
        return [a for a in alerts if a["labels"].get("alertname") == "HeraldDeliveryFailureRatio"
                and a["labels"].get("channel") == CHANNEL and a["state"] == "firing"]
    alert = eventually("HeraldDeliveryFailureRatio to fire", firing, timeout=60)[0]
    say(f"HeraldDeliveryFailureRatio is firing: {alert['annotations']['summary']}")

    def delivered_alert():
        with Receiver.lock:
            return [body for path, _, body in Receiver.received if path == "/alerts" and b"HeraldDeliveryFailureRatio" in body]
    bodies = eventually("the alert to arrive as a notification on the operators' channel", delivered_alert, timeout=60)
    rows = psql(f"SELECT d.status FROM deliveries d WHERE d.tenant = '{TENANT}' AND d.channel = '{OPS}'")
    if not rows or any(status != "sent" for (status,) in rows):
        fail(f"the alert notification's delivery is {rows}")
    say(f"Alertmanager → POST /v1/alerts/alertmanager → {OPS} → receiver: {json.loads(bodies[0])['text'].splitlines()[0]}")

    # The idle channel: its queue depth and consumers, as Herald reads them from the broker.
    def promql(expr):
        status, body = http("GET", f"{prometheus}/api/v1/query?query={urllib.parse.quote(expr)}")
        result = json.loads(body)["data"]["result"] if status == 200 else []
        return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in result}

    def one(expr):
        values = list(promql(expr).values())
        return values[0] if len(values) == 1 else None
    for index in range(3):
        status, body = http("POST", f"{api}/v1/notifications", {
            "channel": IDLE, "to": {"webhook_url": f"{receiver}/ok/idle-{index}"}, "message": {"text": f"{BODY_MARKER} idle"},
        }, auth)
        if status != 202:
            fail(f"POST /v1/notifications (idle channel) answered {status}: {body[:300]!r}")
    eventually(f"herald_queue_messages_ready{{channel={IDLE}}} = 3 with no consumer", lambda: one(
        f'max(herald_queue_messages_ready{{channel="{IDLE}"}})') == 3 and one(f'max(herald_queue_consumers{{channel="{IDLE}"}})') == 0,
        timeout=30)
    say(f"queue depth from the broker: 3 messages wait on {IDLE}, 0 consumers")
    start("worker-late", [BIN, "worker", "--channel", IDLE], dict(env, HERALD_MANAGEMENT_PORT=str(PORTS["late_worker"])))
    eventually(f"the late worker to drain {IDLE}", lambda: int(psql(
        f"SELECT count(*) FROM deliveries WHERE tenant = '{TENANT}' AND channel = '{IDLE}' AND status = 'sent'")[0][0]) == 3, timeout=60)
    eventually(f"herald_queue_messages_ready{{channel={IDLE}}} = 0 with a consumer", lambda: one(
        f'max(herald_queue_messages_ready{{channel="{IDLE}"}})') == 0 and one(f'max(herald_queue_consumers{{channel="{IDLE}"}})') == 1,
        timeout=30)
    say(f"a worker for {IDLE} drained it: 0 messages wait, 1 consumer")

    # 5. The dashboards' expressions.
    checked = 0
    empty = []
    for path in glob.glob(os.path.join(ROOT, "deploy/grafana/dashboards/*.json")):
        for panel in json.load(open(path))["panels"]:
            for target in panel.get("targets", []):
                query = urllib.parse.quote(target["expr"])
                status, body = http("GET", f"{prometheus}/api/v1/query?query={query}")
                if status != 200 or json.loads(body)["status"] != "success":
                    fail(f"panel '{panel['title']}': Prometheus refused {target['expr']!r}: {body[:300]!r}")
                checked += 1
                if not json.loads(body)["data"]["result"]:
                    empty.append(panel["title"])
    # This run has no transient failure (no retry); every other panel shows the run's data.
    unexpected = [title for title in empty if not title.startswith(("Retries scheduled", "Rate-limit waits"))]
    if unexpected:
        fail(f"dashboard panels without data after the run: {unexpected}")
    say(f"{checked} dashboard expressions accepted by Prometheus; with data after the run: all but {empty or 'none'}")

    # 6. The log lines.
    stop_all()
    template = json.load(open(os.path.join(ROOT, "deploy/elk/index-template.json")))["template"]["mappings"]["properties"]

    def mapped(properties, prefix=""):
        for name, field in properties.items():
            if "properties" in field:
                yield from mapped(field["properties"], f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}", field["type"]
    mapping = dict(mapped(template))
    json_types = {"keyword": str, "text": str, "date": str, "long": int, "integer": int, "boolean": bool, "double": float}
    required = {"@timestamp": str, "log.level": str, "message": str, "service.name": str, "event.action": str, "event.outcome": str,
                "event.duration": int, "herald.notification_id": str, "herald.delivery_id": str, "herald.channel": str,
                "herald.provider": str, "herald.attempt": int, "herald.tenant": str, "herald.recipient": str}
    for field in list(required) + ["error.message", "http.response.status_code", "trace.id"]:
        if field not in mapping:
            fail(f"deploy/elk/index-template.json does not map {field}")
    recorded = {channel: int(count) for channel, count in psql(
        f"SELECT channel, count(*) FROM attempts WHERE tenant = '{TENANT}' GROUP BY channel")}
    lines_per_channel = {}
    traced = 0
    recipient_paths = [f"{receiver}/fail/", f"{receiver}/ok/", "/ok/idle-", "/fail/0-"]
    for name, _ in processes:
        if name in ("prometheus", "alertmanager"):
            continue
        for number, line in enumerate(open(os.path.join(RUN, f"{name}.log"), encoding="utf-8"), 1):
            where = f"{name}.log:{number}"
            if SECRET in line or SECRET.split("_", 1)[1] in line:
                fail(f"{where} contains the webhook secret")
            if BODY_MARKER in line:
                fail(f"{where} contains a message body")
            if any(path in line for path in recipient_paths):
                fail(f"{where} contains a recipient's URL: {line[:300]}")
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                fail(f"{where} is not one JSON object: {line[:200]!r}")
            if not isinstance(record, dict):
                fail(f"{where} is not a JSON object")
            for field in ["@timestamp", "log.level", "message", "service.name"]:
                if not isinstance(record.get(field), str):
                    fail(f"{where} lacks {field}")
            # A field that is both a value and the parent of others can't be indexed (ECS: error is an object).
            for key in record:
                if any(other.startswith(key + ".") for other in record):
                    fail(f"{where}: {key} is a value and the parent of other fields")
            for key, value in record.items():
                kind = json_types.get(mapping.get(key))
                # Elasticsearch indexes an array as its values.
                values = value if isinstance(value, list) else [value]
                if kind and any(not isinstance(v, kind) or (kind is int and isinstance(v, bool)) for v in values):
                    fail(f"{where}: {key} is {value!r}, but the index template maps it as {mapping[key]}")
            if record.get("event.action") != "delivery-attempt":
                continue
            channel = record.get("herald.channel")
            lines_per_channel[channel] = lines_per_channel.get(channel, 0) + 1
            for field, kind in required.items():
                if not isinstance(record.get(field), kind) or isinstance(record.get(field), bool):
                    fail(f"{where}: {field} is {record.get(field)!r}, expected a {kind.__name__}")
            if channel in (CHANNEL, IDLE):
                if record["herald.recipient"] != f"http://127.0.0.1:{PORTS['receiver']}/…":
                    fail(f"{where}: the recipient is not masked to scheme and host: {record['herald.recipient']!r}")
                if not isinstance(record.get("http.response.status_code"), int):
                    fail(f"{where}: http.response.status_code is {record.get('http.response.status_code')!r}")
            failed = record["event.outcome"] != "success"
            if failed and not isinstance(record.get("error.message"), str):
                fail(f"{where}: a failed attempt without error.message")
            expected_level = "error" if record.get("herald.outcome") == "permanent_failure" else ("warning" if failed else "info")
            if record["log.level"] != expected_level:
                fail(f"{where}: level {record['log.level']} for outcome {record.get('herald.outcome')}")
            traced += channel == CHANNEL and record.get("trace.id") == "0af7651916cd43dd8448eb211c80319c"
    if lines_per_channel != recorded:
        fail(f"attempt log lines per channel {lines_per_channel} differ from the recorded attempts {recorded}")
    if traced != recorded.get(CHANNEL):
        fail(f"{traced} of {recorded.get(CHANNEL)} attempt lines carry the request's trace id")
    with Receiver.lock:
        forwarded = [h.get("traceparent", "") for p, h, _ in Receiver.received if p.startswith(("/ok/", "/fail/")) and "idle" not in p]
    if not forwarded or not all(t.startswith("00-0af7651916cd43dd8448eb211c80319c-") for t in forwarded):
        fail(f"provider requests without the request's trace: {forwarded[:3]}")
    say(f"attempt log lines = recorded attempts per channel {recorded}; ECS fields typed as the index template maps them; "
        "trace id on every line and provider request; recipients masked; no secret, no message body")
    say(f"passed in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
