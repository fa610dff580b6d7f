#!/usr/bin/env python3
"""A small, misbehaving OCI registry and token server for the transport's unit tests.

Why it exists: Debian has no token (Bearer) auth server and no registry that can be told to fail
on cue, yet the client's retries, resumes, checks and token refresh only show against a server
that stalls, resets, truncates, lies about sizes or expires tokens. The real registry
(docker-registry) covers the well-behaved paths; this covers the rest.

It speaks just enough of the distribution API: /v2/, HEAD/GET blobs (with Range), upload
sessions (POST, PATCH, GET status, PUT ?digest=), manifests (PUT, GET, HEAD by tag or digest),
and /token. State is in memory.

Usage: fake_registry.py [--bearer] [--token-uses N] [--user U --password P]
Prints "PORT <n>" on stdout once listening on 127.0.0.1 (port chosen by the kernel).
Control: POST /__faults with {"blob_get": [...], "patch": [...]}: each request of that kind
consumes the first fault in its list. Blob GET faults: "503", "reset" (half the body, then a TCP
RST), "truncate" (half the body, then close), "stall" (half the body, then silence), "wrong"
(other bytes), "huge" (declares a 1 TB body). PATCH faults: "500-half" (keep half the chunk, then
answer 500). GET /__stats returns counters as JSON, with the Range and X-Dragonfly-* headers of
every blob GET.
"""
import argparse
import base64
import hashlib
import json
import re
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
BLOBS = {}    # digest -> bytes
UPLOADS = {}  # uuid -> bytearray
MANIFESTS = {}  # (repository, tag or digest) -> (media type, bytes)
FAULTS = {"blob_get": [], "patch": []}
STATS = {"token_requests": 0, "blob_gets": 0, "patches": 0, "upload_status": 0, "unauthorized": 0,
         "ranges": [], "dragonfly": []}
TOKENS = {"current": 0, "uses": 0}
ARGS = None


def take_fault(kind):
    with LOCK:
        return FAULTS[kind].pop(0) if FAULTS[kind] else None


class Dropped(Exception):
    """The handler closed the connection on purpose."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the test prints what matters
        pass

    # -- plumbing -------------------------------------------------------------------------------
    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def drop(self, reset):
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
        raise Dropped()

    def authorized(self):
        if not ARGS.bearer or self.path.startswith("/__") or self.path.startswith("/token"):
            return True
        got = self.headers.get("Authorization", "")
        with LOCK:
            ok = got == "Bearer tok-%d" % TOKENS["current"] and TOKENS["current"] > 0 \
                and TOKENS["uses"] < ARGS.token_uses
            if ok:
                TOKENS["uses"] += 1
            else:
                STATS["unauthorized"] += 1
        if not ok:
            self.body()  # keep the connection usable: the request body must be read
            port = self.server.server_address[1]
            m = re.match(r"/v2/(.+?)/(blobs|manifests|tags)/", self.path)
            scope = ',scope="repository:%s:pull,push"' % m.group(1) if m else ""
            self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"token needed"}]}',
                       {"WWW-Authenticate": 'Bearer realm="http://127.0.0.1:%d/token",service="fake"%s'
                        % (port, scope)})
        return ok

    def dispatch(self):
        try:
            if not self.authorized():
                return
            path = self.path.split("?", 1)[0]
            if path == "/token":
                return self.token()
            if path == "/__faults":
                return self.set_faults()
            if path == "/__stats":
                with LOCK:
                    return self.reply(200, json.dumps(STATS).encode())
            if path == "/v2/":
                return self.reply(200, b"{}")
            m = re.match(r"^/v2/(.+)/blobs/uploads/([^/]*)$", path)
            if m:
                return self.upload(m.group(2))
            m = re.match(r"^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$", path)
            if m and self.command in ("GET", "HEAD"):
                return self.blob(m.group(2))
            m = re.match(r"^/v2/(.+)/manifests/([^/]+)$", path)
            if m:
                return self.manifest(m.group(1), m.group(2))
            self.reply(404, b'{"errors":[{"code":"NOT_FOUND","message":"no route"}]}')
        except (Dropped, BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = dispatch

    # -- endpoints ------------------------------------------------------------------------------
    def manifest(self, repo, ref):
        if self.command == "PUT":
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            kind = self.headers.get("Content-Type", "")
            with LOCK:
                MANIFESTS[(repo, ref)] = MANIFESTS[(repo, digest)] = (kind, body)
            return self.reply(201, b"", {"Docker-Content-Digest": digest,
                                         "Location": "/v2/%s/manifests/%s" % (repo, digest)})
        with LOCK:
            found = MANIFESTS.get((repo, ref))
        if not found:
            return self.reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}')
        kind, body = found
        headers = {"Content-Type": kind, "Docker-Content-Digest": "sha256:" + hashlib.sha256(body).hexdigest()}
        return self.reply(200, body, headers)

    def token(self):
        with LOCK:
            STATS["token_requests"] += 1
        if ARGS.user:
            want = "Basic " + base64.b64encode(("%s:%s" % (ARGS.user, ARGS.password)).encode()).decode()
            if self.headers.get("Authorization") != want:
                return self.reply(401, b'{"details":"bad credentials"}')
        with LOCK:
            TOKENS["current"] += 1
            TOKENS["uses"] = 0
            token = "tok-%d" % TOKENS["current"]
        self.reply(200, json.dumps({"token": token, "expires_in": 60}).encode(),
                   {"Content-Type": "application/json"})

    def set_faults(self):
        wanted = json.loads(self.body() or b"{}")
        with LOCK:
            for kind, faults in wanted.items():
                FAULTS[kind] = list(faults)
        self.reply(200, b"{}")

    def blob(self, digest):
        with LOCK:
            data = BLOBS.get(digest)
            if self.command == "GET":
                STATS["blob_gets"] += 1
                STATS["ranges"].append(self.headers.get("Range", ""))
                # The X-Dragonfly-* headers each blob GET arrived with (a proxy must pass them on).
                STATS["dragonfly"].append({k: v for k, v in self.headers.items() if k.lower().startswith("x-dragonfly-")})
        if data is None:
            return self.reply(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')
        if self.command == "HEAD":
            return self.head(data)
        fault = take_fault("blob_get")
        start = 0
        rng = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if rng and fault != "huge":
            start = int(rng.group(1))
            end = int(rng.group(2)) if rng.group(2) else len(data) - 1
            part = data[start:end + 1]
            status, extra = 206, {"Content-Range": "bytes %d-%d/%d" % (start, end, len(data))}
        else:
            part, status, extra = data, 200, {}
        if fault == "503":
            return self.reply(503, b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}')
        if fault == "wrong":
            part = bytes(b ^ 0x5A for b in part)
        declared = 10 ** 12 if fault == "huge" else len(part)
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        if fault in ("reset", "truncate", "stall", "huge"):
            self.wfile.write(part[: max(1, len(part) // 2)])
            if fault == "stall":
                time.sleep(30)
            self.drop(reset=(fault == "reset"))
        self.wfile.write(part)

    def head(self, data):
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(data).hexdigest())
        self.end_headers()

    def upload(self, upload_id):
        name = self.path.split("/blobs/uploads/")[0][len("/v2/"):]
        if self.command == "POST" and not upload_id:
            self.body()
            upload_id = uuid.uuid4().hex
            with LOCK:
                UPLOADS[upload_id] = bytearray()
            return self.reply(202, b"", self.session_headers(name, upload_id, 0))
        with LOCK:
            buf = UPLOADS.get(upload_id)
        if buf is None:
            return self.reply(404, b'{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"no upload"}]}')
        if self.command == "GET":
            with LOCK:
                STATS["upload_status"] += 1
            return self.reply(204, b"", self.session_headers(name, upload_id, len(buf)))
        if self.command == "PATCH":
            with LOCK:
                STATS["patches"] += 1
            chunk = self.body()
            start = int((self.headers.get("Content-Range") or "0-").split("-")[0])
            if start != len(buf):
                return self.reply(416, b'{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"bad range"}]}')
            if take_fault("patch") == "500-half":
                buf.extend(chunk[: len(chunk) // 2])
                return self.reply(500, b'{"errors":[{"code":"UNKNOWN","message":"injected"}]}')
            buf.extend(chunk)
            return self.reply(202, b"", self.session_headers(name, upload_id, len(buf)))
        if self.command == "PUT":
            buf.extend(self.body())
            digest = re.search(r"digest=([^&]+)", self.path).group(1).replace("%3A", ":")
            got = "sha256:" + hashlib.sha256(buf).hexdigest()
            if got != digest:
                return self.reply(400, b'{"errors":[{"code":"DIGEST_INVALID","message":"digest mismatch"}]}')
            with LOCK:
                BLOBS[digest] = bytes(buf)
                del UPLOADS[upload_id]
            return self.reply(201, b"", {"Docker-Content-Digest": digest,
                                         "Location": "/v2/%s/blobs/%s" % (name, digest)})
        self.reply(405)

    def session_headers(self, name, upload_id, size):
        # Like distribution: a fresh _state on every answer, and Range "0-(size-1)".
        return {"Location": "/v2/%s/blobs/uploads/%s?_state=%s" % (name, upload_id, uuid.uuid4().hex),
                "Range": "0-%d" % max(0, size - 1), "Docker-Upload-UUID": upload_id}


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--bearer", action="store_true")
    parser.add_argument("--token-uses", type=int, default=1000)
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    ARGS = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
