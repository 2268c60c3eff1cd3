#!/usr/bin/env python3
"""Stand-ins for every HTTP provider Herald's shipped channels talk to, in one process.

    python provider_standin.py [--port 0] [--specs DIR]

Serves on 127.0.0.1 and prints `PORT <n>` as the first stdout line. Each provider lives under a path
prefix; the rest of the path is the provider's own path (its host rewritten to
http://127.0.0.1:<port>/<prefix>):

    /twilio/2010-04-01/Accounts/{sid}/Messages.json      Twilio          (OpenAPI)
    /sendgrid/v3/mail/send                                SendGrid        (OpenAPI)
    /vonage-sms/sms/json                                  Vonage SMS API  (OpenAPI)
    /mailgun/v3/{domain}/messages                         Mailgun         (OpenAPI; urlencoded re-encoded as multipart)
    /fcm/v1/projects/{p}/messages:send                    FCM HTTP v1     (OpenAPI + bearer issued by /fcm-token)
    /fcm-token                                            Google OAuth token endpoint (JWT-bearer grant, RS256)
    /apns/3/device/{token}                                APNs            (facts: headers, ES256 provider token)
    /telegram/bot{token}/sendMessage                      Telegram        (OpenAPI)
    /slack/api/chat.postMessage                           Slack Web API   (OpenAPI + ok:true answer)
    /slack-hooks/services/T…/B…/…                         Slack incoming webhook (documented shape)
    /discord/api/v10/webhooks/{id}/{token}?wait=true      Discord         (OpenAPI)
    /teams/…                                              Teams Workflows / incoming webhook (facts: Adaptive Card)
    /matrix/_matrix/client/v3/rooms/{room}/send/…         Matrix C-S      (OpenAPI + m.room.message content schema)
    /whatsapp/v23.0/{phone-number-id}/messages            WhatsApp Cloud  (OpenAPI)
    /kannel/cgi-bin/sendsms?…                             Kannel          (required query parameters)
    /webhook/…                                            Standard Webhooks receiver (signature)
    /webpush/push/{id}                                    Web Push service (RFC 8030 headers; VAPID verified with
                                                          py_vapid, the aes128gcm payload decrypted with http_ece)

Each request is validated (OpenAPI requests with openapi-core against the provider's spec, the request
host taken from the spec's servers[0]; the rest by the checks below) and answered with the provider's
documented success body (with a message id), or 400 with the violations. Control endpoints:

    GET  /_requests   everything received: [{provider, method, path, query, headers, body, valid, violations, status}]
    POST /_reset      forget what was received and scripted
    POST /_script     {"provider": "twilio", "statuses": [503]} - the next requests to it get these statuses
    POST /_expect     what signatures are checked against: {"webhook_secret": "whsec_…",
                      "apns": {"public_key_pem", "key_id", "team_id", "topic"},
                      "google": {"public_key_pem", "client_email"}, "webpush": {"vapid_public_key"}}
    POST /_webpush_subscribe   a new subscription, as a browser's PushSubscription.toJSON() gives it:
                      {endpoint, keys: {p256dh, auth}}; the stand-in keeps the private key to decrypt
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:  # openapi-core is required for the OpenAPI providers; the rest works without it
    from openapi_core import OpenAPI
    from openapi_core.testing import MockRequest
except ImportError:  # pragma: no cover
    OpenAPI = None

try:
    import standardwebhooks  # the reference implementation, used as a second opinion when installed
except ImportError:
    standardwebhooks = None

try:  # Web Push: the independent implementations the payload and the VAPID token are checked with
    import http_ece
    import py_vapid
    import py_vapid.jwt
    from cryptography.hazmat.primitives.asymmetric import ec as crypto_ec
    from cryptography.hazmat.primitives.serialization import Encoding as CryptoEncoding, PublicFormat as CryptoPublicFormat
except ImportError:  # pragma: no cover
    http_ece = None

SPEC_FILES = {
    "twilio": "twilio-api-v2010-create-message.openapi.json",
    "sendgrid": "sendgrid-mail-send.openapi.json",
    "vonage-sms": "vonage-sms-send.openapi.json",
    "mailgun": "mailgun-send-message.openapi.json",
    "fcm": "fcm-v1-messages-send.openapi.json",
    "telegram": "telegram-bot-api-send.openapi.json",
    "slack": "slack-chat-postmessage.openapi.json",
    "discord": "discord-webhook-and-message.openapi.json",
    "matrix": "matrix-cs-room-send.openapi.json",
    "whatsapp": "whatsapp-cloud-api-send-message.openapi.json",
}
CUSTOM = {"fcm-token", "apns", "slack-hooks", "teams", "kannel", "webhook", "webpush"}


# ----------------------------------------------------------------------------------------------
# Specs (loaded in the background at start; a request waits for its provider's spec)

class Specs:
    def __init__(self, directory):
        self.directory = directory
        self.loaded = {}
        self.raw = {}
        self.errors = {}
        self.events = {name: threading.Event() for name in SPEC_FILES}
        self.locks = {name: threading.Lock() for name in SPEC_FILES}

    def load_all(self):
        for name, file in SPEC_FILES.items():
            try:
                with open(os.path.join(self.directory, file)) as f:
                    raw = json.load(f)
                self.raw[name] = raw
                self.loaded[name] = OpenAPI.from_dict(raw) if OpenAPI else None
            except Exception as e:  # recorded as a violation of every request to this provider
                self.errors[name] = "%s: %s" % (type(e).__name__, e)
            self.events[name].set()

    def get(self, name):
        self.events[name].wait(120)
        if name in self.errors:
            raise RuntimeError("spec %s could not be loaded: %s" % (SPEC_FILES[name], self.errors[name]))
        if self.loaded.get(name) is None:
            raise RuntimeError("openapi-core is not installed")
        return self.loaded[name], self.raw[name]


def server_host(raw):
    """scheme://host of the spec's servers[0] (path-level servers first), variables at their defaults."""
    servers = raw.get("servers") or []
    if not servers:
        for item in raw.get("paths", {}).values():
            if item.get("servers"):
                servers = item["servers"]
                break
    server = servers[0]
    url = server["url"]
    for name, var in (server.get("variables") or {}).items():
        url = url.replace("{%s}" % name, str(var.get("default", "")))
    parts = urllib.parse.urlsplit(url)
    return "%s://%s" % (parts.scheme, parts.netloc)


def describe(error):
    text = "%s: %s" % (type(error).__name__, error)
    cause = error.__cause__
    while cause is not None:
        details = getattr(cause, "schema_errors", None)
        if details:
            text += " <- " + "; ".join(
                "%s at %s" % (d.message[:200], "/".join(str(p) for p in d.absolute_path) or "(root)") for d in details)
        else:
            text += " <- %s" % str(cause)[:300]
        cause = cause.__cause__
    return text


# ----------------------------------------------------------------------------------------------
# JWT, DER, RSA and ECDSA P-256 verification (stdlib only)

def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def split_jwt(token, problems, what):
    parts = token.split(".")
    if len(parts) != 3:
        problems.append("%s: not a compact JWS (3 dot-separated parts)" % what)
        return None
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except Exception as e:
        problems.append("%s: cannot decode: %s" % (what, e))
        return None
    return header, claims, (parts[0] + "." + parts[1]).encode(), signature


def der_read(data, offset=0):
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[offset:offset + count], "big")
        offset += count
    return tag, data[offset:offset + length], offset + length


def der_children(data):
    out, offset = [], 0
    while offset < len(data):
        tag, value, offset = der_read(data, offset)
        out.append((tag, value))
    return out


def pem_body(pem):
    lines = [l for l in pem.strip().replace("\\n", "\n").splitlines() if l and not l.startswith("-----")]
    return base64.b64decode("".join(lines))


def spki_key_bits(pem):
    """The subjectPublicKey BIT STRING contents of a SubjectPublicKeyInfo PEM."""
    _, spki, _ = der_read(pem_body(pem))
    for tag, value in der_children(spki):
        if tag == 0x03:
            return value[1:]
    raise ValueError("no BIT STRING in the public key")


def rsa_verify_pkcs1_sha256(pem, message, signature):
    # SubjectPublicKeyInfo ("PUBLIC KEY") or PKCS#1 ("RSA PUBLIC KEY")
    bits = pem_body(pem) if "RSA PUBLIC KEY" in pem else spki_key_bits(pem)
    _, seq, _ = der_read(bits)
    (_, n), (_, e) = der_children(seq)[:2]
    n, e = int.from_bytes(n, "big"), int.from_bytes(e, "big")
    k = (n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    em = pow(int.from_bytes(signature, "big"), e, n).to_bytes(k, "big")
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(message).digest()
    expected = b"\x00\x01" + b"\xff" * (k - 3 - len(digest_info)) + b"\x00" + digest_info
    return hmac.compare_digest(em, expected)


P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_A = P256_P - 3
P256_G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
          0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)


def ec_add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P256_P == 0:
        return None
    if p1 == p2:
        slope = (3 * x1 * x1 + P256_A) * pow(2 * y1, P256_P - 2, P256_P) % P256_P
    else:
        slope = (y2 - y1) * pow(x2 - x1, P256_P - 2, P256_P) % P256_P
    x3 = (slope * slope - x1 - x2) % P256_P
    return x3, (slope * (x1 - x3) - y1) % P256_P


def ec_mul(k, point):
    result = None
    while k:
        if k & 1:
            result = ec_add(result, point)
        point = ec_add(point, point)
        k >>= 1
    return result


def es256_verify(pem, message, signature):
    bits = spki_key_bits(pem)
    if len(bits) != 65 or bits[0] != 4 or len(signature) != 64:
        return False
    q = (int.from_bytes(bits[1:33], "big"), int.from_bytes(bits[33:], "big"))
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < P256_N and 0 < s < P256_N):
        return False
    z = int.from_bytes(hashlib.sha256(message).digest(), "big")
    w = pow(s, P256_N - 2, P256_N)
    point = ec_add(ec_mul(z * w % P256_N, P256_G), ec_mul(r * w % P256_N, q))
    return point is not None and point[0] % P256_N == r


# ----------------------------------------------------------------------------------------------
# State

class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.scripts = {}
        self.expect = {}
        self.google_tokens = set()
        self.push_subscriptions = {}  # id -> (private key, auth secret)
        self.counter = 0

    def next_number(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def scripted_status(self, provider):
        with self.lock:
            queue = self.scripts.get(provider) or []
            return queue.pop(0) if queue else None


STATE = State()
SPECS = None


def snowflake():
    return str((int(time.time() * 1000) - 1420070400000) << 22 | STATE.next_number())


# ----------------------------------------------------------------------------------------------
# Per-provider checks: each returns (status, content_type, body bytes, extra headers) for a valid request

def jbody(value):
    return json.dumps(value).encode()


def parse_json(req, problems, what="body"):
    try:
        value = json.loads(req["raw"].decode("utf-8"))
    except Exception as e:
        problems.append("%s is not JSON: %s" % (what, e))
        return None
    ctype = req["headers"].get("content-type", "")
    if not ctype.lower().startswith("application/json"):
        problems.append("Content-Type is %r, not application/json" % ctype)
    return value


def openapi_validate(provider, req, problems, data=None, content_type=None):
    api, raw = SPECS.get(provider)
    headers = {k.title(): v for k, v in req["headers"].items()}
    mock = MockRequest(
        server_host(raw), req["method"].lower(), req["decoded_path"], args=dict(req["query_pairs"]),
        headers=headers, data=req["raw"] if data is None else data,
        content_type=content_type or req["headers"].get("content-type", "application/json"))
    with SPECS.locks[provider]:
        errors = list(api.iter_request_errors(mock))
    problems.extend("openapi: " + describe(e) for e in errors)
    return raw


def form_fields(req, problems):
    ctype = req["headers"].get("content-type", "")
    if not ctype.lower().startswith("application/x-www-form-urlencoded"):
        problems.append("Content-Type is %r, not application/x-www-form-urlencoded" % ctype)
    try:
        return urllib.parse.parse_qsl(req["raw"].decode("ascii"), keep_blank_values=True, strict_parsing=bool(req["raw"]))
    except Exception as e:
        problems.append("the form body does not parse: %s" % e)
        return []


def check_twilio(req, problems):
    openapi_validate("twilio", req, problems)
    fields = dict(form_fields(req, problems))
    if not fields.get("From") and not fields.get("MessagingServiceSid"):
        problems.append("Twilio needs From or MessagingServiceSid")
    if not (fields.get("Body") or fields.get("MediaUrl") or fields.get("ContentSid")):
        problems.append("Twilio needs Body, MediaUrl or ContentSid")
    sid = "SM" + uuid.uuid4().hex
    account = req["decoded_path"].split("/")[3] if req["decoded_path"].count("/") >= 4 else ""
    return 201, "application/json", jbody({
        "sid": sid, "account_sid": account, "to": fields.get("To"), "from": fields.get("From"),
        "body": fields.get("Body"), "status": "queued", "num_segments": "1", "direction": "outbound-api",
        "api_version": "2010-04-01", "uri": "/2010-04-01/Accounts/%s/Messages/%s.json" % (account, sid)}), {}


def check_sendgrid(req, problems):
    openapi_validate("sendgrid", req, problems)
    body = parse_json(req, problems)
    if isinstance(body, dict):
        for item in body.get("content") or []:
            if isinstance(item, dict) and item.get("value") == "":
                problems.append("SendGrid rejects an empty content value")
        if not body.get("subject") and not any(
                isinstance(p, dict) and p.get("subject") for p in body.get("personalizations") or []):
            problems.append("SendGrid needs a subject (top level or per personalization)")
    return 202, None, b"", {"X-Message-Id": uuid.uuid4().hex[:22]}


def check_vonage_sms(req, problems):
    openapi_validate("vonage-sms", req, problems)
    fields = dict(form_fields(req, problems))
    if not fields.get("api_secret") and not fields.get("sig"):
        problems.append("Vonage needs api_secret or sig")
    if fields.get("type") in (None, "text", "unicode") and not fields.get("text"):
        problems.append("a text SMS needs text")
    return 200, "application/json", jbody({"message-count": "1", "messages": [{
        "to": fields.get("to", "").lstrip("+"), "message-id": uuid.uuid4().hex[:16].upper(), "status": "0",
        "remaining-balance": "3.14159265", "message-price": "0.03330000", "network": "12345",
        **({"client-ref": fields["client-ref"]} if "client-ref" in fields else {})}]}), {}


def multipart(pairs, boundary="StandinBoundary7d93"):
    out = []
    for k, v in pairs:
        out.append("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (boundary, k, v))
    out.append("--%s--\r\n" % boundary)
    return "".join(out).encode("utf-8"), "multipart/form-data; boundary=" + boundary


def check_mailgun(req, problems):
    ctype = req["headers"].get("content-type", "").lower()
    if ctype.startswith("application/x-www-form-urlencoded"):
        # The contract declares multipart/form-data only; Mailgun's API accepts the same fields urlencoded.
        pairs = form_fields(req, problems)
        data, content_type = multipart(pairs)
        openapi_validate("mailgun", req, problems, data=data, content_type=content_type)
    else:
        openapi_validate("mailgun", req, problems)
        pairs = []
    fields = dict(pairs)
    if not fields.get("to"):  # openapi-core turns an absent multipart array into [] (see provider-specs/README.md)
        problems.append("Mailgun needs to")
    if not (fields.get("text") or fields.get("html") or fields.get("template") or fields.get("amp-html")):
        problems.append("Mailgun needs text, html or template")
    domain = req["decoded_path"].split("/")[2] if req["decoded_path"].count("/") >= 3 else "example.com"
    return 200, "application/json", jbody({
        "id": "<%s.%d@%s>" % (time.strftime("%Y%m%d%H%M%S"), STATE.next_number(), domain),
        "message": "Queued. Thank you."}), {}


def check_fcm(req, problems):
    openapi_validate("fcm", req, problems)
    auth = req["headers"].get("authorization", "")
    token = auth[7:] if auth.lower().startswith("bearer ") else None
    with STATE.lock:
        issued = token in STATE.google_tokens
    if not issued:
        problems.append("Authorization is not a bearer token issued by the token endpoint (/fcm-token)")
    body = parse_json(req, problems)
    image = body.get("message", {}).get("notification", {}).get("image") if isinstance(body, dict) else None
    if image is not None and not (isinstance(image, str) and image.startswith("https://")):
        problems.append("message.notification.image must be an HTTPS URL")
    project = req["decoded_path"].split("/")[3] if req["decoded_path"].count("/") >= 4 else "p"
    return 200, "application/json", jbody(
        {"name": "projects/%s/messages/0:%d%%%s" % (project, int(time.time() * 1e6), uuid.uuid4().hex[:16])}), {}


def check_google_token(req, problems):
    if req["method"] != "POST":
        problems.append("the token request must be a POST")
    fields = dict(form_fields(req, problems))
    if fields.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        problems.append("grant_type is %r, not the JWT-bearer grant" % fields.get("grant_type"))
    parsed = split_jwt(fields.get("assertion", ""), problems, "assertion")
    if parsed:
        header, claims, signed, signature = parsed
        if header.get("alg") != "RS256":
            problems.append("assertion alg is %r, not RS256" % header.get("alg"))
        if header.get("typ") not in (None, "JWT"):
            problems.append("assertion typ is %r" % header.get("typ"))
        audience = "http://%s/fcm-token" % req["headers"].get("host", "")
        if claims.get("aud") != audience:
            problems.append("assertion aud is %r, not the token_uri %r" % (claims.get("aud"), audience))
        scopes = str(claims.get("scope", "")).split()
        if "https://www.googleapis.com/auth/firebase.messaging" not in scopes \
                and "https://www.googleapis.com/auth/cloud-platform" not in scopes:
            problems.append("assertion scope %r has neither firebase.messaging nor cloud-platform" % claims.get("scope"))
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or abs(iat - now) > 300:
            problems.append("assertion iat %r is not an integer near now" % iat)
        elif not isinstance(exp, int) or not (iat < exp <= iat + 3600):
            problems.append("assertion exp %r must be after iat and at most an hour later" % exp)
        expected = STATE.expect.get("google") or {}
        if expected.get("client_email") and claims.get("iss") != expected["client_email"]:
            problems.append("assertion iss %r is not the service account %r" % (claims.get("iss"), expected["client_email"]))
        if not claims.get("iss"):
            problems.append("assertion has no iss")
        if expected.get("public_key_pem"):
            try:
                if not rsa_verify_pkcs1_sha256(expected["public_key_pem"], signed, signature):
                    problems.append("assertion signature does not verify with the service account's key")
            except Exception as e:
                problems.append("assertion signature check failed: %s" % e)
    token = "ya29.standin-" + uuid.uuid4().hex
    if not problems:
        with STATE.lock:
            STATE.google_tokens.add(token)
    return 200, "application/json", jbody({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}), {}


APNS_PUSH_TYPES = {"alert", "background", "voip", "complication", "fileprovider", "mdm", "location", "liveactivity",
                   "pushtotalk", "widgets", "controls"}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def check_apns(req, problems):
    h = req["headers"]
    if req["method"] != "POST":
        problems.append("APNs takes POST only (405 MethodNotAllowed)")
    if not re.fullmatch(r"/3/device/[0-9a-fA-F]+", req["decoded_path"]):
        problems.append("path %r is not /3/device/<hex device token> (BadDeviceToken/BadPath)" % req["decoded_path"])
    expected = STATE.expect.get("apns") or {}
    topic = h.get("apns-topic")
    if not topic:
        problems.append("apns-topic is missing (MissingTopic)")
    elif expected.get("topic") and topic != expected["topic"]:
        problems.append("apns-topic %r is not %r" % (topic, expected["topic"]))
    push_type = h.get("apns-push-type")
    if push_type not in APNS_PUSH_TYPES:
        problems.append("apns-push-type %r is not one of %s" % (push_type, sorted(APNS_PUSH_TYPES)))
    if "apns-priority" in h and h["apns-priority"] not in ("10", "5", "1"):
        problems.append("apns-priority %r is not 10, 5 or 1 (BadPriority)" % h["apns-priority"])
    if "apns-id" in h and not UUID_RE.match(h["apns-id"]):
        problems.append("apns-id %r is not a lower-case canonical UUID (BadMessageId)" % h["apns-id"])
    if "apns-expiration" in h and not h["apns-expiration"].isdigit():
        problems.append("apns-expiration is not epoch seconds (BadExpirationDate)")
    if "apns-collapse-id" in h and len(h["apns-collapse-id"].encode()) > 64:
        problems.append("apns-collapse-id is longer than 64 bytes (BadCollapseId)")
    limit = 5120 if push_type == "voip" else 4096
    if len(req["raw"]) > limit:
        problems.append("payload of %d bytes is over %d (PayloadTooLarge)" % (len(req["raw"]), limit))
    body = parse_json(req, problems) if req["raw"] else None
    if body is None and not req["raw"]:
        problems.append("empty payload (PayloadEmpty)")
    aps = body.get("aps") if isinstance(body, dict) else None
    if not isinstance(aps, dict):
        problems.append("the payload has no aps dictionary")
    else:
        if push_type == "alert" and "alert" not in aps:
            problems.append("apns-push-type alert but aps has no alert")
        if push_type == "background" and (aps.get("content-available") != 1 or {"alert", "badge", "sound"} & set(aps)):
            problems.append("apns-push-type background needs content-available: 1 and no alert/badge/sound")
        if "mutable-content" in aps and aps["mutable-content"] != 1:
            problems.append("aps.mutable-content is %r; the only value is 1" % aps["mutable-content"])
        alert = aps.get("alert")
        if isinstance(alert, dict):
            for key in ("title", "body", "subtitle"):
                if key in alert and not isinstance(alert[key], str):
                    problems.append("aps.alert.%s is not a string" % key)
    auth = h.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        problems.append("authorization is not 'bearer <provider token>' (MissingProviderToken)")
    else:
        parsed = split_jwt(auth[7:].strip(), problems, "provider token")
        if parsed:
            header, claims, signed, signature = parsed
            if header.get("alg") != "ES256":
                problems.append("provider token alg is %r, not ES256" % header.get("alg"))
            if not isinstance(header.get("kid"), str) or len(header["kid"]) != 10:
                problems.append("provider token kid %r is not a 10-character key id" % header.get("kid"))
            elif expected.get("key_id") and header["kid"] != expected["key_id"]:
                problems.append("provider token kid %r is not %r" % (header["kid"], expected["key_id"]))
            if not isinstance(claims.get("iss"), str) or len(claims["iss"]) != 10:
                problems.append("provider token iss %r is not a 10-character team id" % claims.get("iss"))
            elif expected.get("team_id") and claims["iss"] != expected["team_id"]:
                problems.append("provider token iss %r is not %r" % (claims["iss"], expected["team_id"]))
            iat = claims.get("iat")
            if not isinstance(iat, int) or not (time.time() - 3600 <= iat <= time.time() + 60):
                problems.append("provider token iat %r is not within the last hour (ExpiredProviderToken)" % iat)
            if expected.get("public_key_pem"):
                try:
                    if not es256_verify(expected["public_key_pem"], signed, signature):
                        problems.append("provider token signature does not verify (InvalidProviderToken)")
                except Exception as e:
                    problems.append("provider token signature check failed: %s" % e)
    return 200, None, b"", {"apns-id": h.get("apns-id") or str(uuid.uuid4())}


def check_telegram(req, problems):
    openapi_validate("telegram", req, problems)
    body = parse_json(req, problems)
    body = body if isinstance(body, dict) else {}
    method = req["decoded_path"].rsplit("/", 1)[-1]
    if method == "sendPhoto":
        if not http_url(body.get("photo")):
            problems.append("sendPhoto needs photo: a file_id or an http(s) URL here (Bad Request: wrong file identifier)")
        if "text" in body:
            problems.append("sendPhoto has no text; the text goes in caption")
        if len(body.get("caption") or "") > 1024:
            problems.append("caption is over 1,024 characters (Bad Request: message caption is too long)")
    elif method == "sendMessage" and not body.get("text"):
        problems.append("sendMessage needs a non-empty text (Bad Request: message text is empty)")
    chat = body.get("chat_id")
    try:
        chat_id = int(chat)
    except (TypeError, ValueError):
        chat_id = -1001234567890
    return 200, "application/json", jbody({"ok": True, "result": {
        "message_id": STATE.next_number(), "date": int(time.time()), "chat": {"id": chat_id, "type": "private"},
        "text": body.get("text")}}), {}


def http_url(value):
    return isinstance(value, str) and re.match(r"https?://[^/\s]+", value) is not None


def check_blocks(blocks, problems):
    """Block Kit as Slack's reference states it for the blocks Herald sends (section, image)."""
    if blocks is None:
        return
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        problems.append("blocks must be an array of 1-50 blocks (invalid_blocks)")
        return
    for index, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "image":
            if not http_url(block.get("image_url")) or len(block["image_url"]) > 3000:
                problems.append("blocks[%d]: an image block needs image_url, a URL of at most 3,000 characters" % index)
            if not isinstance(block.get("alt_text"), str) or not 1 <= len(block["alt_text"]) <= 2000:
                problems.append("blocks[%d]: an image block needs alt_text of 1-2,000 characters" % index)
        elif kind == "section":
            text = block.get("text")
            if not isinstance(text, dict) or text.get("type") not in ("plain_text", "mrkdwn") \
                    or not isinstance(text.get("text"), str) or not 1 <= len(text["text"]) <= 3000:
                problems.append("blocks[%d]: a section's text is {type: plain_text|mrkdwn, text: 1-3,000 characters}" % index)
        else:
            problems.append("blocks[%d]: type %r is not a block Herald is expected to send" % (index, kind))


def check_slack(req, problems):
    openapi_validate("slack", req, problems)
    body = parse_json(req, problems)
    body = body if isinstance(body, dict) else {}
    check_blocks(body.get("blocks"), problems)
    if not (body.get("text") or body.get("blocks") or body.get("attachments")):
        problems.append("chat.postMessage needs text, blocks or attachments")
    ctype = req["headers"].get("content-type", "").replace(" ", "").lower()
    if "charset=utf-8" not in ctype:
        problems.append("JSON to the Web API should say charset=utf-8 (Slack warns missing_charset)")
    ts = "%d.%06d" % (int(time.time()), STATE.next_number())
    return 200, "application/json", jbody({"ok": True, "channel": body.get("channel"), "ts": ts, "message": {
        "type": "message", "text": body.get("text"), "ts": ts, "bot_id": "B0STANDIN"}}), {}


def check_slack_hook(req, problems):
    if req["method"] != "POST":
        problems.append("incoming webhooks take POST")
    if not re.fullmatch(r"/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+", req["decoded_path"]):
        problems.append("path %r is not /services/T…/B…/<secret>" % req["decoded_path"])
    body = parse_json(req, problems)
    if not isinstance(body, dict) or not (isinstance(body.get("text"), str) and body["text"] or body.get("blocks")):
        problems.append("the payload needs a non-empty text (or blocks) (invalid_payload / no_text)")
    if isinstance(body, dict):
        check_blocks(body.get("blocks"), problems)
    return 200, "text/html", b"ok", {}


def check_discord(req, problems):
    openapi_validate("discord", req, problems)
    body = parse_json(req, problems)
    body = body if isinstance(body, dict) else {}
    if not (body.get("content") or body.get("embeds") or body.get("components") or body.get("attachments")):
        problems.append("Discord refuses an empty message (50006)")
    if req["query"].get("wait") != "true":
        problems.append("without ?wait=true Discord answers 204 and no message id")
    parts = req["decoded_path"].split("/")
    return 200, "application/json", jbody({
        "id": snowflake(), "type": 0, "content": body.get("content", ""), "channel_id": "41771983423143937",
        "webhook_id": parts[4] if len(parts) > 4 else "0", "author": {"id": parts[4] if len(parts) > 4 else "0",
        "username": "Herald", "discriminator": "0000", "avatar": None, "bot": True},
        "attachments": [], "embeds": [], "mentions": [], "mention_roles": [], "pinned": False,
        "mention_everyone": False, "tts": False, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "edited_timestamp": None, "flags": 0, "components": []}), {}


def walk(value):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def check_teams(req, problems):
    if req["method"] != "POST":
        problems.append("Teams webhooks take POST")
    if len(req["raw"]) >= 28 * 1024:
        problems.append("message of %d bytes is over the 28 KB limit (413)" % len(req["raw"]))
    body = parse_json(req, problems)
    if not isinstance(body, dict) or body.get("type") != "message":
        problems.append("Workflows need {\"type\": \"message\", \"attachments\": [...]} (Adaptive Cards only)")
        return 202, None, b"", {}
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        problems.append("attachments must be a non-empty array of cards")
        attachments = []
    for index, attachment in enumerate(attachments):
        if not isinstance(attachment, dict):
            problems.append("attachments[%d] is not an object" % index)
            continue
        if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
            problems.append("attachments[%d].contentType is %r" % (index, attachment.get("contentType")))
        card = attachment.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            problems.append("attachments[%d].content is not an AdaptiveCard" % index)
            continue
        if not isinstance(card.get("version"), str):
            problems.append("attachments[%d].content.version must be a string such as \"1.2\"" % index)
        if not isinstance(card.get("body"), list):
            problems.append("attachments[%d].content.body must be an array of elements" % index)
        for element in walk(card):
            if isinstance(element, dict) and element.get("type") == "Action.Submit":
                problems.append("Action.Submit is not supported by incoming webhooks")
            if isinstance(element, dict) and element.get("type") == "TextBlock" and not isinstance(element.get("text"), str):
                problems.append("a TextBlock needs a string text")
            if isinstance(element, dict) and element.get("type") == "Image" and not http_url(element.get("url")):
                problems.append("an Image element needs url: an http(s) URL")
            if element is None:
                problems.append("a card element is null")
    return 202, None, b"", {}


def check_matrix(req, problems):
    raw = openapi_validate("matrix", req, problems)
    body = parse_json(req, problems)
    parts = req["decoded_path"].split("/")
    if len(parts) >= 9 and parts[7] == "m.room.message":
        import jsonschema
        schema = dict(raw["components"]["schemas"]["RoomMessageEventContent"])
        schema["components"] = raw["components"]
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(body))
        if isinstance(body, dict) and body.get("msgtype") == "m.text":
            text_schema = dict(raw["components"]["schemas"]["TextMessageEventContent"])
            text_schema["components"] = raw["components"]
            errors += list(jsonschema.Draft202012Validator(text_schema).iter_errors(body))
        problems.extend("m.room.message content: %s" % e.message[:200] for e in errors)
    return 200, "application/json", jbody({"event_id": "$%s:example.org" % uuid.uuid4().hex}), {}


def check_whatsapp(req, problems):
    openapi_validate("whatsapp", req, problems)
    body = parse_json(req, problems)
    if isinstance(body, dict):
        kind = body.get("type", "text")
        # The Cloud API reads the object named by type; another one present is an error (#100).
        for other in ("text", "image", "document", "video", "audio"):
            if other != kind and other in body:
                problems.append("type is %r but the message also has %r" % (kind, other))
        media = body.get(kind) if kind in ("image", "document", "video", "audio") else None
        if kind != "text" and not (isinstance(media, dict) and (http_url(media.get("link")) or media.get("id"))):
            problems.append("a %s message needs %s.link (an http(s) URL) or %s.id" % (kind, kind, kind))
    to = body.get("to") if isinstance(body, dict) else None
    return 200, "application/json", jbody({
        "messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": str(to or "").lstrip("+")}],
        "messages": [{"id": "wamid." + base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode().rstrip("=")}]}), {}


def check_kannel(req, problems):
    if req["method"] not in ("GET", "POST"):
        problems.append("sendsms takes GET (or POST)")
    if req["decoded_path"] != "/cgi-bin/sendsms":
        problems.append("path %r is not /cgi-bin/sendsms" % req["decoded_path"])
    q = req["query"]
    for name in ("username", "password", "to", "text"):
        if not q.get(name):
            problems.append("query parameter %s is missing or empty" % name)
    for name in q:
        if name not in {"username", "password", "user", "pass", "from", "to", "text", "charset", "coding", "smsc",
                        "udh", "mclass", "mwi", "compress", "validity", "deferred", "dlr-mask", "dlr-url", "pid",
                        "alt-dcs", "rpi", "account", "binfo", "priority", "meta-data"}:
            problems.append("unknown sendsms parameter %r" % name)
    if q.get("to") and not re.fullmatch(r"\+?[0-9]{3,20}", q["to"]):
        problems.append("to %r is not a phone number" % q["to"])
    if "coding" in q and q["coding"] not in ("0", "1", "2"):
        problems.append("coding %r is not 0, 1 or 2" % q["coding"])
    if q.get("coding") == "2" and not q.get("charset"):
        problems.append("coding=2 needs charset so Kannel can convert the text")
    if problems:  # Kannel's own error answers are text with a status
        return 400, "text/html", b"Missing receiver number, rejected", {}
    return 202, "text/html", b"0: Accepted for delivery", {}


SIG_RE = re.compile(r"^v1a?,[A-Za-z0-9+/]+=*$")
EVENT_TYPE_RE = re.compile(r"^[a-zA-Z0-9_]+(\.[a-zA-Z0-9_]+)*$")


def check_webhook(req, problems):
    h = req["headers"]
    if req["method"] != "POST":
        problems.append("webhooks are POSTs")
    msg_id, timestamp, signatures = h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature")
    if not msg_id:
        problems.append("webhook-id is missing")
    elif "." in msg_id:
        problems.append("webhook-id must not contain '.'")
    if not timestamp or not timestamp.isdigit():
        problems.append("webhook-timestamp %r is not integer seconds" % timestamp)
    elif abs(int(timestamp) - time.time()) > 300:
        problems.append("webhook-timestamp is more than 5 minutes from now")
    entries = (signatures or "").split(" ")
    if not signatures or not all(SIG_RE.match(e) for e in entries):
        problems.append("webhook-signature %r is not a space-separated list of v1,<base64>" % signatures)
    secret = STATE.expect.get("webhook_secret")
    if secret and msg_id and timestamp and signatures:
        key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
        mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + req["raw"], hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(mac).decode()
        if not any(hmac.compare_digest(expected, e) for e in entries):
            problems.append("no v1 signature matches HMAC-SHA256(id.timestamp.body) with the endpoint secret")
        if standardwebhooks is not None:
            try:
                standardwebhooks.Webhook(secret).verify(req["raw"], {
                    "webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signatures})
            except Exception as e:
                problems.append("the standardwebhooks library rejects it: %s" % e)
    body = parse_json(req, problems)
    if isinstance(body, dict):
        if not isinstance(body.get("type"), str) or not EVENT_TYPE_RE.match(body["type"]):
            problems.append("payload type %r is not a full-stop delimited event type" % body.get("type"))
        if "timestamp" not in body:
            problems.append("payload has no timestamp")
        if not isinstance(body.get("data"), dict):
            problems.append("payload data is not an object")
    elif body is not None:
        problems.append("payload is not a JSON object")
    return 204, None, b"", {}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_push_subscription(base_url):
    key = crypto_ec.generate_private_key(crypto_ec.SECP256R1())
    auth = os.urandom(16)
    sub_id = uuid.uuid4().hex
    STATE.push_subscriptions[sub_id] = (key, auth)
    public = key.public_key().public_bytes(CryptoEncoding.X962, CryptoPublicFormat.UncompressedPoint)
    return {"endpoint": "%s/webpush/push/%s" % (base_url, sub_id), "expirationTime": None,
            "keys": {"p256dh": b64url(public), "auth": b64url(auth)}}


URGENCIES = {"very-low", "low", "normal", "high"}


def check_webpush(req, problems):
    """A push service (RFC 8030 §5) that is also the subscribing browser: checks the headers, verifies
    the VAPID token (RFC 8292) with py_vapid, and decrypts the aes128gcm payload (RFC 8291) with
    http_ece, both written independently of Herald."""
    if http_ece is None:
        problems.append("http_ece and py_vapid are not installed in the stand-in's Python")
        return 201, None, b"", {}
    parts = req["path"].split("/")
    if req["method"] != "POST" or len(parts) != 3 or parts[1] != "push":
        problems.append("push messages are POST /push/{subscription}, not %s %s" % (req["method"], req["path"]))
        return 404, None, b"", {}
    with STATE.lock:
        subscription = STATE.push_subscriptions.get(parts[2])
    if subscription is None:
        return 404, "application/json", jbody({"error": "no such subscription"}), {}
    headers = req["headers"]
    ttl = headers.get("ttl")
    if ttl is None or not ttl.isdigit():
        problems.append("TTL header missing or not a number of seconds: %r" % ttl)
    if headers.get("content-encoding") != "aes128gcm":
        problems.append("Content-Encoding is %r, not aes128gcm" % headers.get("content-encoding"))
    if "urgency" in headers and headers["urgency"] not in URGENCIES:
        problems.append("Urgency %r is not one of %s" % (headers["urgency"], sorted(URGENCIES)))
    if "topic" in headers and not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", headers["topic"]):
        problems.append("Topic %r is not 1-32 base64url characters" % headers["topic"])
    # VAPID: `vapid t=<jwt>,k=<public key>`, checked by py_vapid; then the claims RFC 8292 §2 requires.
    authorization = headers.get("authorization", "")
    match = re.fullmatch(r"vapid t=([A-Za-z0-9_\-.]+), ?k=([A-Za-z0-9_-]+)", authorization)
    if not match:
        problems.append("Authorization is not 'vapid t=…, k=…': %r" % authorization[:40])
    else:
        token, key = match.group(1), match.group(2)
        try:
            if not py_vapid.Vapid02.verify(authorization):
                problems.append("py_vapid: the VAPID signature does not verify with k")
            claims = py_vapid.jwt.decode(token, key)
        except Exception as e:
            problems.append("py_vapid: the VAPID token does not verify: %s: %s" % (type(e).__name__, e))
            claims = {}
        parsed = split_jwt(token, problems, "VAPID token")
        header = parsed[0] if parsed else None
        if header is not None and header.get("alg") != "ES256":
            problems.append("VAPID token alg is %r, not ES256" % header.get("alg"))
        expected_aud = "http://" + headers.get("host", "")
        if claims and claims.get("aud") != expected_aud:
            problems.append("aud %r is not the push service origin %r" % (claims.get("aud"), expected_aud))
        exp = claims.get("exp") if claims else None
        now = time.time()
        if claims and not (isinstance(exp, int) and now < exp <= now + 86400):
            problems.append("exp %r is not in the next 24 hours" % exp)
        if claims and not py_vapid._check_sub(claims.get("sub", "")):
            problems.append("sub %r is not a mailto: or https: URI" % claims.get("sub"))
        expected_key = STATE.expect.get("webpush", {}).get("vapid_public_key")
        if expected_key and key != expected_key:
            problems.append("k is not the VAPID public key expected")
    # The payload: at most 4096 bytes, one record, decrypted by http_ece with the subscription's keys.
    body = req["raw"]
    if len(body) > 4096:
        problems.append("the body is %d bytes; push services need not take more than 4096" % len(body))
    if len(body) < 21 + 65 + 17:
        problems.append("the body is too short for an aes128gcm header and one record")
        return 201, None, b"", {}
    rs = int.from_bytes(body[16:20], "big")
    idlen = body[20]
    if idlen != 65:
        problems.append("keyid is %d bytes, not a 65-byte P-256 public key" % idlen)
    if len(body) - 21 - idlen > rs:
        problems.append("more than one record (RFC 8291 §4 wants exactly one)")
    key, auth = subscription
    try:
        plaintext = http_ece.decrypt(body, private_key=key, auth_secret=auth, version="aes128gcm")
        req["decrypted"] = plaintext.decode("utf-8")
    except Exception as e:
        problems.append("http_ece could not decrypt the payload: %s: %s" % (type(e).__name__, getattr(e, "message", e)))
    message_id = uuid.uuid4().hex
    return 201, None, b"", {"Location": "http://%s/webpush/message/%s" % (headers.get("host", ""), message_id)}


CHECKS = {
    "twilio": check_twilio, "sendgrid": check_sendgrid, "vonage-sms": check_vonage_sms, "mailgun": check_mailgun,
    "fcm": check_fcm, "fcm-token": check_google_token, "apns": check_apns, "telegram": check_telegram,
    "slack": check_slack, "slack-hooks": check_slack_hook, "discord": check_discord, "teams": check_teams,
    "matrix": check_matrix, "whatsapp": check_whatsapp, "kannel": check_kannel, "webhook": check_webhook,
    "webpush": check_webpush,
}

# What a provider answers when a failure is scripted (status → body), roughly its documented error shape.
def scripted_answer(provider, status):
    body = {"fcm": {"error": {"code": status, "message": "scripted", "status": "UNAVAILABLE"}},
            "apns": {"reason": "ServiceUnavailable"},
            "slack": {"ok": False, "error": "fatal_error"},
            "telegram": {"ok": False, "error_code": status, "description": "scripted failure"},
            "twilio": {"code": 20500, "message": "scripted failure", "status": status}}.get(
        provider, {"error": "scripted failure", "status": status})
    return jbody(body)


# ----------------------------------------------------------------------------------------------
# HTTP

def decode_path(path):
    # A server decodes percent-escapes per segment; an encoded '/' stays inside its segment.
    return "/".join(urllib.parse.unquote(segment).replace("/", "%2F") for segment in path.split("/"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "HeraldProviderStandin/1"

    def log_message(self, fmt, *args):
        if os.environ.get("STANDIN_VERBOSE"):
            sys.stderr.write("standin: " + (fmt % args) + "\n")

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, status, content_type, body, headers=None):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_PATCH(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def handle_any(self):
        raw = self.read_body()
        split = urllib.parse.urlsplit(self.path)
        segments = split.path.split("/")
        prefix = segments[1] if len(segments) > 1 else ""
        if prefix == "_requests" and self.command == "GET":
            with STATE.lock:
                return self.answer(200, "application/json", json.dumps(STATE.requests).encode())
        if prefix.startswith("_") and self.command == "POST":
            return self.control(prefix, raw)
        if prefix not in CHECKS:
            return self.answer(404, "application/json", jbody({"error": "no stand-in at /%s" % prefix}))
        rest = "/" + "/".join(segments[2:])
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        query_pairs = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        req = {
            "provider": prefix, "method": self.command, "path": rest, "decoded_path": decode_path(rest),
            "query": dict(query_pairs), "query_pairs": query_pairs, "headers": headers, "raw": raw,
        }
        problems = []
        if sum(1 for name in self.headers.keys() if name.lower() == "authorization") > 1:
            problems.append("more than one Authorization header")
        try:
            status, ctype, body, extra = CHECKS[prefix](req, problems)
        except Exception as e:
            problems.append("stand-in could not check the request: %s: %s" % (type(e).__name__, e))
            status, ctype, body, extra = 200, None, b"", {}
        scripted = STATE.scripted_status(prefix)
        if scripted is not None:
            status, ctype, body, extra = scripted, "application/json", scripted_answer(prefix, scripted), {}
        elif problems:
            status, ctype, body, extra = 400, "application/json", jbody({"error": "contract violation", "violations": problems}), {}
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        record = {
            "provider": prefix, "method": self.command, "path": rest, "query": req["query"], "headers": headers,
            "body": text, "body_base64": None if text is not None else base64.b64encode(raw).decode(),
            "valid": not problems, "violations": problems, "status": status,
            "response": body.decode("utf-8", "replace"), "decrypted": req.get("decrypted"),
        }
        with STATE.lock:
            STATE.requests.append(record)
        self.answer(status, ctype, body, extra)

    def control(self, name, raw):
        try:
            document = json.loads(raw or b"{}")
        except ValueError as e:
            return self.answer(400, "application/json", jbody({"error": str(e)}))
        with STATE.lock:
            if name == "_reset":
                STATE.requests.clear()
                STATE.scripts.clear()
            elif name == "_script":
                STATE.scripts.setdefault(document["provider"], []).extend(int(s) for s in document.get("statuses", []))
            elif name == "_expect":
                STATE.expect.update(document)
            elif name == "_webpush_subscribe":
                if http_ece is None:
                    return self.answer(500, "application/json", jbody({"error": "http_ece is not installed"}))
                base = "http://%s" % self.headers.get("Host", "127.0.0.1:%d" % self.server.server_address[1])
                return self.answer(200, "application/json", jbody(new_push_subscription(base)))
            else:
                return self.answer(404, "application/json", jbody({"error": "unknown control %s" % name}))
        self.answer(200, "application/json", b"{}")


def main():
    global SPECS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    default_specs = os.environ.get("HERALD_PROVIDER_SPECS") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "provider-specs")
    parser.add_argument("--specs", default=default_specs)
    args = parser.parse_args()
    # A parent that ignores SIGTERM (service runners often do) passes that on: exit on it explicitly.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    SPECS = Specs(args.specs)
    threading.Thread(target=SPECS.load_all, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
