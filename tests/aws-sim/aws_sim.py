#!/usr/bin/env python3
"""nitrosync AWS simulator: moto (STS, IAM, Secrets Manager, KMS) over HTTPS on loopback.

Requests carry the real AWS Host header (a relay points the real hostnames at this port), so the
simulator serves one TLS certificate for all of them, signed by a throw-away CA that it writes to
``STATE_DIR/ca.pem``. When it listens it writes ``STATE_DIR/ready.json``. SIGTERM/SIGINT stop it.

Layers, outermost first:
  * ``SimServer`` / ``WsgiBridge``: threaded HTTP/1.1 server with keep-alive. The TLS handshake runs
    in the connection's own thread; request bodies are read whole and responses are buffered and
    sent with Content-Length, so a connection always stays in sync.
  * ``StrictFront``: WSGI middleware. Logs every request, serves the control API
    (``/_sim/...`` or host ``sim.nitrosync.local``), runs fault injection, then the checks that make
    the simulator answer like AWS (wired in ``wiring.py``: ``saml_check.py`` for AssumeRoleWithSAML,
    ``auth.py`` + ``iam_eval.py`` for SigV4 and IAM policies, ``sm_limits.py`` for Secrets Manager
    limits/state/KMS, ``faults.py``), then moto, then after-hooks that fix moto's answers.
  * ``HostDispatcher``: moto's ``DomainDispatcherApplication``, but picking the backend from the
    Host header first, as AWS does, and falling back to moto's own inference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import ipaddress
import json
import os
import re
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Iterable, Optional
from urllib.parse import parse_qs, unquote_to_bytes, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CONTROL_HOST = "sim.nitrosync.local"
CONTROL_PREFIX = "/_sim/"
SERVED_SERVICES = ("sts", "iam", "secretsmanager", "kms")
MAX_BODY = 16 * 1024 * 1024
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def log(msg: str) -> None:
    sys.stderr.write(f"aws-sim: {msg}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------


def server_names(regions: Iterable[str]) -> list[str]:
    names = []
    for r in regions:
        names += [f"sts.{r}.amazonaws.com", f"secretsmanager.{r}.amazonaws.com", f"kms.{r}.amazonaws.com"]
    names += ["sts.amazonaws.com", "iam.amazonaws.com", CONTROL_HOST, "localhost"]
    return names


def make_certificates(regions: list[str]) -> tuple[bytes, bytes, bytes]:
    """Returns (ca_cert_pem, server_cert_pem, server_key_pem). Keys are P-256, validity one day."""
    now = dt.datetime.now(dt.timezone.utc)
    not_before, not_after = now - dt.timedelta(minutes=5), now + dt.timedelta(days=1)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nitrosync simulator"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"nitrosync aws-sim test CA {os.getpid()}"),
    ])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names(regions)]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nitrosync aws-sim")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca_cert.public_bytes(pem), cert.public_bytes(pem), key_pem


def make_ssl_context(cert_pem: bytes, key_pem: bytes, state_dir: str) -> ssl.SSLContext:
    """Loads the server cert and key without leaving the key on disk.

    ssl.SSLContext only loads from paths: use an anonymous memfd where Linux has it, otherwise a
    0600 file in the state dir that is removed right after loading.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    blob = cert_pem + key_pem
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("aws-sim-server-key")
        try:
            os.write(fd, blob)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    else:  # pragma: no cover - non-Linux fallback
        path = os.path.join(state_dir, f".server-key-{os.getpid()}.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, blob)
            os.close(fd)
            ctx.load_cert_chain(path)
        finally:
            os.unlink(path)
    return ctx


# --------------------------------------------------------------------------------------------
# moto dispatch
# --------------------------------------------------------------------------------------------


def make_moto_app() -> Any:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class HostDispatcher(DomainDispatcherApplication):
        """moto's dispatcher ignores the Host header: it infers the service from the SigV4
        credential scope, or for unsigned calls from a small table of actions (AssumeRoleWithSAML
        and AssumeRoleWithWebIdentity map to STS) and defaults to S3 otherwise. AWS routes by
        Host, so try the Host header first and use moto's inference only when it names no
        backend."""

        def get_application(self, environ: dict[str, Any]) -> Any:
            path = environ.get("PATH_INFO", "")
            if not path.startswith("/moto-api"):
                host = re.sub(r":\d+$", "", environ.get("HTTP_HOST", "")).lower()
                if host.endswith(".amazonaws.com"):
                    with self.lock:
                        backend = self.get_backend_for_host(host)
                        if backend:
                            app = self.app_instances.get(backend)
                            if app is None:
                                app = self.app_instances[backend] = self.create_app(backend)
                            return app
            return super().get_application(environ)

        def warm_up(self, services: Iterable[str]) -> None:
            with self.lock:
                for s in services:
                    if s not in self.app_instances:
                        self.app_instances[s] = self.create_app(s)

    app = HostDispatcher(create_backend_app)
    app.warm_up(SERVED_SERVICES)
    return app


# --------------------------------------------------------------------------------------------
# StrictFront: the middleware where checks, limits and faults live
# --------------------------------------------------------------------------------------------


class DropConnection(Exception):
    """Raised by a check to close the client's connection without any response."""


@dataclass
class SimRequest:
    environ: dict
    method: str
    host: str
    path: str
    query: str
    headers: dict  # lower-case name -> value
    body: bytes
    service: str  # from the Host: "sts", "secretsmanager", ... ("" if unknown)
    region: str
    action: str  # X-Amz-Target operation or form/query Action ("" if none)
    signed: bool
    ctx: dict = field(default_factory=dict)  # state shared by checks and after-hooks of one request
    _form: Optional[dict] = field(default=None, repr=False)

    @property
    def form(self) -> dict:
        """Query-protocol parameters (form body, else query string), first value of each."""
        if self._form is None:
            src = self.query
            if self.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                src = self.body.decode("utf-8", "replace")
            self._form = {k: v[0] for k, v in parse_qs(src, keep_blank_values=True).items()}
        return self._form

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def replace_body(self, body: bytes, content_type: Optional[str] = None) -> None:
        """Changes what moto will see (e.g. a normalised SAML assertion)."""
        self.body = body
        self._form = None
        self.environ["wsgi.input"] = io.BytesIO(body)
        self.environ["CONTENT_LENGTH"] = str(len(body))
        if content_type:
            self.environ["CONTENT_TYPE"] = self.headers["content-type"] = content_type


@dataclass
class SimResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list = field(default_factory=list)


def json_response(obj: Any, status: int = 200) -> SimResponse:
    return SimResponse(status, json.dumps(obj, sort_keys=True).encode())


def aws_json_error(type_: str, message: str, status: int = 400) -> SimResponse:
    """Error shape of JSON-protocol services (Secrets Manager, KMS)."""
    r = SimResponse(status, json.dumps({"__type": type_, "message": message}).encode(),
                    "application/x-amz-json-1.1")
    r.headers.append(("x-amzn-ErrorType", type_))
    return r


def aws_query_error(code: str, message: str, status: int = 400, type_: str = "Sender") -> SimResponse:
    """Error shape of query-protocol services (STS, IAM)."""
    from xml.sax.saxutils import escape

    ns = "https://sts.amazonaws.com/doc/2011-06-15/"
    body = (f'<ErrorResponse xmlns="{ns}"><Error><Type>{type_}</Type><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{os.urandom(16).hex()}</RequestId>"
            "</ErrorResponse>")
    return SimResponse(status, body.encode(), "text/xml")


# A check sees every AWS request (not control-API ones) before moto does. It returns None to let
# the request through, or a SimResponse to answer it; it may also sleep (latency) or raise
# DropConnection.
Check = Callable[[SimRequest], Optional[SimResponse]]


def parse_host(host: str) -> tuple[str, str]:
    labels = host.split(".")
    if not host.endswith(".amazonaws.com") or len(labels) < 3:
        return "", ""
    service = labels[0]
    region = labels[1] if len(labels) >= 4 and REGION_RE.match(labels[1]) else "us-east-1"
    return service, region


def infer_service(req: "SimRequest", target: str) -> tuple[str, str]:
    """Service and region of a request whose Host is not an AWS name (e.g. boto3 with
    endpoint_url=https://127.0.0.1:PORT): from the SigV4 credential scope, else the X-Amz-Target
    prefix, else the unsigned STS federation actions; ("", "") if none (the checks then skip it)."""
    m = re.search(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request", req.headers.get("authorization", ""))
    if m:
        return m.group(2), m.group(1)
    prefix = target.split(".", 1)[0].lower()
    if prefix in ("secretsmanager", "trentservice"):
        return ("secretsmanager" if prefix == "secretsmanager" else "kms"), "us-east-1"
    if req.action in ("AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"):
        return "sts", "us-east-1"
    return "", ""


class StrictFront:
    """WSGI middleware in front of moto.

    Per AWS request: count it; run `pre_checks` (fault injection: may sleep, answer, or drop) outside
    any lock; then, serialised by `self.serial` so that moto's check-then-write sequences (e.g.
    ClientRequestToken idempotency) cannot interleave, run `checks` in order, call moto, and pass
    its answer through the `after` hooks `(req, status, body) -> (status, body)`. A request marked
    `req.ctx["drop_after"]` is processed and then its connection dropped. `on_write(req, outcome)`
    sees every Secrets Manager request for the write log; `on_reset` hooks run after moto's reset.
    """

    def __init__(self, app: Any, checks: Optional[list] = None):
        self.app = app
        self.pre_checks: list = []
        self.checks: list = list(checks or [])
        self.after: list = []
        self.on_write: Optional[Callable] = None
        self.on_reset: list = []
        self.control_routes: dict = {}  # first path segment -> handler(req, rest) -> SimResponse
        self.lock = threading.Lock()
        self.serial = threading.RLock()
        self.counts: dict[str, int] = {}
        self.total = 0
        self.started = time.time()

    # -- request model -----------------------------------------------------------------------

    def make_request(self, environ: dict) -> SimRequest:
        body = environ["wsgi.input"].read()
        environ["wsgi.input"] = io.BytesIO(body)
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if "CONTENT_TYPE" in environ:
            headers["content-type"] = environ["CONTENT_TYPE"]
        host = re.sub(r":\d+$", "", headers.get("host", "")).lower()
        service, region = parse_host(host)
        req = SimRequest(
            environ=environ, method=environ["REQUEST_METHOD"], host=host,
            path=environ.get("PATH_INFO", ""), query=environ.get("QUERY_STRING", ""),
            headers=headers, body=body, service=service, region=region, action="",
            signed="authorization" in headers or "X-Amz-Signature=" in environ.get("QUERY_STRING", ""),
        )
        target = headers.get("x-amz-target", "")
        if target:
            req.action = target.rsplit(".", 1)[-1]
        else:
            req.action = req.form.get("Action", "")
        if not req.service and not req.path.startswith("/moto-api"):
            req.service, req.region = infer_service(req, target)
        return req

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        t0 = time.monotonic()
        arrived = time.time()
        req = self.make_request(environ)
        req.ctx["arrived"] = arrived
        outcome = "500"
        label = "moto-api" if req.path.startswith("/moto-api") else f"{req.service or '-'}:{req.action or '-'}"
        is_aws = False
        try:
            if req.host == CONTROL_HOST or req.path.startswith(CONTROL_PREFIX):
                label = "control"
                resp = self.control(req)
                outcome = str(resp.status)
                return self.respond(resp, start_response)
            is_aws = label != "moto-api"
            with self.lock:
                self.total += 1
                self.counts[label] = self.counts.get(label, 0) + 1
            resp = self.run_checks(self.pre_checks, req) if is_aws else None
            if resp is None:
                with self.serial:
                    resp = (self.run_checks(self.checks, req) if is_aws else None) or self.call_app(req)
                    if req.path.rstrip("/") == "/moto-api/reset":
                        for hook in self.on_reset:
                            hook()
            outcome = str(resp.status)
            if resp.status >= 400:
                outcome += " " + error_code(resp)
            if req.ctx.get("drop_after"):
                outcome = f"dropped_after {outcome}"
                raise DropConnection()
            return self.respond(resp, start_response)
        except DropConnection:
            if not outcome.startswith("dropped_after"):
                outcome = "dropped_before"
            raise
        finally:
            if is_aws and self.on_write is not None:
                try:
                    self.on_write(req, outcome)
                except Exception:
                    log("write log failed:\n" + traceback.format_exc())
            log(f"{req.method} {req.host or '-'}{req.path if req.path != '/' else ''} {label} "
                f"{outcome} {1000 * (time.monotonic() - t0):.1f}ms")

    @staticmethod
    def run_checks(checks: list, req: SimRequest) -> Optional[SimResponse]:
        for check in checks:
            resp = check(req)
            if resp is not None:
                return resp
        return None

    def call_app(self, req: SimRequest) -> SimResponse:
        captured: dict = {}

        def sr(status: str, headers: list, exc_info: Any = None) -> Callable:
            captured["status"], captured["headers"] = status, headers
            return lambda data: captured.setdefault("written", []).append(data)

        it = self.app(req.environ, sr)
        try:
            body = b"".join(list(captured.get("written", [])) + [bytes(c) for c in it])
        finally:
            if hasattr(it, "close"):
                it.close()
        status = int(captured.get("status", "500").split(" ", 1)[0])
        for hook in self.after:
            status, body = hook(req, status, body)
        ctype, headers = "application/octet-stream", []
        for k, v in captured.get("headers", []):
            if k.lower() == "content-type":
                ctype = v
            elif k.lower() != "content-length":
                headers.append((k, v))
        return SimResponse(status, body, ctype, headers)

    @staticmethod
    def respond(resp: SimResponse, start_response: Callable) -> list[bytes]:
        import http

        try:
            reason = http.HTTPStatus(resp.status).phrase
        except ValueError:
            reason = "Unknown"
        headers = [("Content-Type", resp.content_type), ("Content-Length", str(len(resp.body)))]
        headers += resp.headers
        if not any(k.lower() == "x-amzn-requestid" for k, _ in headers):
            headers.append(("x-amzn-RequestId", os.urandom(16).hex()))
        start_response(f"{resp.status} {reason}", headers)
        return [resp.body]

    # -- control API -------------------------------------------------------------------------

    def control(self, req: SimRequest) -> SimResponse:
        path = req.path[len(CONTROL_PREFIX) - 1:] if req.path.startswith(CONTROL_PREFIX) else req.path
        path = "/" + path.strip("/")
        if path == "/health" and req.method == "GET":
            return json_response({"ok": True, "uptime_s": round(time.time() - self.started, 3)})
        if path == "/requests":
            with self.lock:
                if req.method == "GET":
                    out = {"total": self.total, "by_action": dict(self.counts)}
                elif req.method == "DELETE":
                    self.total, self.counts = 0, {}
                    out = {"ok": True}
                else:
                    return json_response({"error": "method not allowed"}, 405)
            extra = self.control_routes.get("requests")
            if extra is not None:
                out.update(extra(req, ""))
            return json_response(out)
        head, _, rest = path[1:].partition("/")
        handler = self.control_routes.get(head)
        if handler is not None and head != "requests":
            return handler(req, rest)
        return json_response({"error": f"no control endpoint {path}"}, 404)


def error_code(resp: SimResponse) -> str:
    """The AWS error code of an error answer (JSON __type or query <Code>), for logs."""
    try:
        t = json.loads(resp.body).get("__type", "")
        return str(t).rsplit("#", 1)[-1]
    except (ValueError, AttributeError):
        m = re.search(rb"<Code>([^<]*)</Code>", resp.body)
        return m.group(1).decode("utf-8", "replace") if m else ""


# --------------------------------------------------------------------------------------------
# HTTP/1.1 + TLS server with a WSGI bridge
# --------------------------------------------------------------------------------------------


class WsgiBridge(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nitrosync-aws-sim"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds

    server: "SimServer"

    def log_message(self, format: str, *args: Any) -> None:  # StrictFront logs requests
        pass

    def log_error(self, format: str, *args: Any) -> None:
        log("http: " + (format % args))

    def _read_body(self) -> Optional[bytes]:
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                if len(out) + size > MAX_BODY:
                    return None
                out += self.rfile.read(size)
                self.rfile.readline(3)
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_BODY:
            return None
        return self.rfile.read(n) if n else b""

    def _send(self, status: str, headers: list, body: bytes) -> None:
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason or None)
        for k, v in headers:
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # Headers and body leave in one write: one TLS record, no small trailing segment.
        if self.command != "HEAD" and body:
            self._headers_buffer.append(b"\r\n" + body)
        else:
            self._headers_buffer.append(b"\r\n")
        self.flush_headers()

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            body = None
        if body is None:
            self.close_connection = True
            self._send("413 Payload Too Large", [("Content-Type", "text/plain")], b"bad or too large body\n")
            return
        url = urlsplit(self.path)
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(url.path).decode("latin-1"),
            "QUERY_STRING": url.query,
            "REQUEST_URI": self.path,
            "RAW_URI": self.path,
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": self.client_address[1],
            "SERVER_NAME": self.server.server_address[0],
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
        }
        for key, value in self.headers.items():
            if "_" in key:  # cannot be told apart from '-' in WSGI; drop like werkzeug does
                continue
            key = key.upper().replace("-", "_")
            if key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                continue
            if key != "CONTENT_TYPE":
                key = "HTTP_" + key
            environ[key] = f"{environ[key]},{value}" if key in environ else value

        result: dict[str, Any] = {}

        def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
            result["status"], result["headers"] = status, headers
            return lambda data: result.setdefault("written", []).append(data)

        try:
            it = self.server.app(environ, start_response)
            try:
                chunks = list(result.get("written", [])) + [bytes(c) for c in it]
            finally:
                if hasattr(it, "close"):
                    it.close()
        except DropConnection:
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            raise
        except Exception:
            log("internal error:\n" + traceback.format_exc())
            payload = json.dumps({"__type": "InternalFailure", "message": "simulator error"}).encode()
            self._send("500 Internal Server Error", [("Content-Type", "application/json")], payload)
            return
        self._send(result.get("status", "500 Internal Server Error"), result.get("headers", []), b"".join(chunks))

    def handle(self) -> None:
        try:
            super().handle()
        except DropConnection:
            pass
        except (ConnectionError, TimeoutError, ssl.SSLError):
            pass

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle


class SimServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], app: Any, ssl_ctx: ssl.SSLContext):
        self.app = app
        self.ssl_ctx = ssl_ctx
        super().__init__(addr, WsgiBridge)

    def finish_request(self, request: socket.socket, client_address: Any) -> None:
        # Runs in the connection's thread: a slow or broken handshake blocks only itself.
        request.settimeout(10)
        # Without this, Nagle's algorithm holds a response's last segment until the client's
        # delayed ACK (about 40 ms on Linux), which made every call take ~45 ms.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as e:
            log(f"TLS handshake from {client_address[0]}:{client_address[1]} failed: {e}")
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log(f"connection error from {client_address}:\n{traceback.format_exc()}")


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--regions", default="us-east-1,eu-west-1")
    ap.add_argument("--attestation-root", action="append", default=None, metavar="FILE",
                    help="certificate(s) (PEM or DER) that KMS Recipient attestation documents must chain to; "
                         "repeatable; read again whenever the file changes, and may appear after start "
                         "(default: the AWS Nitro Enclaves root)")
    ap.add_argument("--attestation-max-age-s", type=float, default=300,
                    help="oldest KMS Recipient attestation document accepted, in seconds (default 300)")
    args = ap.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    bad = [r for r in regions if not REGION_RE.match(r)]
    if not regions or bad:
        ap.error(f"bad --regions: {bad or 'empty'}")

    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    ready_path = os.path.join(state_dir, "ready.json")
    ca_path = os.path.join(state_dir, "ca.pem")
    try:
        os.unlink(ready_path)  # never leave a stale one for a waiter to read
    except FileNotFoundError:
        pass

    ca_pem, cert_pem, key_pem = make_certificates(regions)
    ssl_ctx = make_ssl_context(cert_pem, key_pem, state_dir)
    del key_pem
    write_atomic(ca_path, ca_pem)

    import wiring

    front = wiring.build_front(make_moto_app(), sys.modules[__name__], args.attestation_root,
                               args.attestation_max_age_s)
    server = SimServer((args.host, args.port), front, ssl_ctx)
    host, port = server.server_address[:2]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="aws-sim-accept", daemon=True)
    thread.start()

    roots = [os.path.abspath(p) for p in (args.attestation_root or [])]
    ready = {"host": host, "port": port, "ca": ca_path, "pid": os.getpid(), "regions": regions,
             "attestation_roots": roots}
    write_atomic(ready_path, json.dumps(ready).encode())
    log(f"listening on https://{host}:{port} regions={','.join(regions)} state={state_dir}")
    log(f"KMS Recipient attestation roots: {', '.join(roots) if roots else 'AWS Nitro Enclaves root (default)'}")

    try:
        while not stop.wait(0.2):
            if not thread.is_alive():
                log("server thread died")
                return 1
    finally:
        try:
            os.unlink(ready_path)
        except FileNotFoundError:
            pass
        server.shutdown()
        server.server_close()
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
