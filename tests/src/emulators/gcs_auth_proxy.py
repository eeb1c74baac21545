"""An authenticating front for fake-gcs-server, which checks no credentials.

Every request must carry `Authorization: Bearer <JWT>`: a self-signed RS256
JWT of the test's service account (https://google.aip.dev/auth/4111). The
proxy checks the signature against the account's public key and the claims
(alg, kid, iss = sub = client_email, a storage scope, iat/exp within an hour
of now); anything else is answered 401 in the JSON API's error shape and
never reaches the server. Accepted requests are forwarded unchanged (minus
the Authorization header).

GET /_walship_proxy/stats (no auth) answers {"accepted": n, "rejected": m,
"last_rejection": "...", "tokens": t} so a test can see that requests were
checked, and how many different tokens were accepted (a token signed a
second later differs: its iat does).

Usage: python gcs_auth_proxy.py PORT UPSTREAM_PORT PUBLIC_KEY_PEM CLIENT_EMAIL KEY_ID
Only the standard library and `cryptography`.
"""

import base64
import http.client
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

PORT, UPSTREAM, PEM, EMAIL, KID = (
    int(sys.argv[1]),
    int(sys.argv[2]),
    sys.argv[3],
    sys.argv[4],
    sys.argv[5],
)
with open(PEM, "rb") as f:
    PUBLIC_KEY = serialization.load_pem_public_key(f.read())
SCOPES = {
    "https://www.googleapis.com/auth/devstorage.read_write",
    "https://www.googleapis.com/auth/devstorage.full_control",
    "https://www.googleapis.com/auth/cloud-platform",
}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "authorization"}
STATS = {"accepted": 0, "rejected": 0, "last_rejection": "", "tokens": 0}
TOKENS = set()
LOCK = threading.Lock()


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check(authorization):
    """None if the bearer token is valid, else why not."""
    if not authorization or not authorization.startswith("Bearer "):
        return "no bearer token"
    parts = authorization[len("Bearer "):].split(".")
    if len(parts) != 3:
        return "the bearer token is not a JWT"
    try:
        header = json.loads(b64url(parts[0]))
        claims = json.loads(b64url(parts[1]))
        signature = b64url(parts[2])
    except Exception as e:  # noqa: BLE001 - any malformed token is refused
        return f"malformed JWT: {e}"
    if header.get("alg") != "RS256":
        return f"alg {header.get('alg')!r} is not RS256"
    if header.get("kid") != KID:
        return f"kid {header.get('kid')!r} is not the service account's key id"
    try:
        PUBLIC_KEY.verify(
            signature,
            f"{parts[0]}.{parts[1]}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        return "the JWT's RS256 signature does not verify against the service account's key"
    if claims.get("iss") != EMAIL or claims.get("sub") != EMAIL:
        return "iss/sub are not the service account"
    scopes = set(str(claims.get("scope", "")).split())
    if not scopes & SCOPES and claims.get("aud") != "https://storage.googleapis.com/":
        return "neither a storage scope nor the storage audience"
    now = time.time()
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        return "iat/exp missing"
    if iat > now + 60 or exp < now or exp - iat > 3600:
        return "iat/exp out of range"
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass  # accepted requests are counted, not logged

    def log_rejection(self, why):
        sys.stderr.write(f"proxy: 401 {self.command} {self.path}: {why}\n")

    def answer(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/_walship_proxy/stats":
            with LOCK:
                data = json.dumps(STATS, separators=(",", ":")).encode()
            return self.answer(200, data, [("Content-Type", "application/json")])
        why = check(self.headers.get("Authorization"))
        if why is not None:
            with LOCK:
                STATS["rejected"] += 1
                STATS["last_rejection"] = why
            self.log_rejection(why)
            error = {"error": {"code": 401, "message": why,
                               "errors": [{"reason": "authError", "message": why}]}}
            return self.answer(401, json.dumps(error).encode(),
                               [("Content-Type", "application/json")])
        with LOCK:
            STATS["accepted"] += 1
            TOKENS.add(self.headers.get("Authorization"))
            STATS["tokens"] = len(TOKENS)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=120)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            reply = upstream.getresponse()
            data = reply.read()
            out = [(k, v) for k, v in reply.getheaders()
                   if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
            self.answer(reply.status, data, out)
        finally:
            upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = handle_any


ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
sys.stderr.write(f"proxy: listening on {PORT}, forwarding to {UPSTREAM}\n")
server.serve_forever()
