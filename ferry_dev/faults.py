"""A fault-injecting HTTP proxy between boto3 clients and the emulator, on 127.0.0.1 only.

The emulator never throttles, never fails and never drops a connection, so the retry and
idempotence paths of ferry cannot be exercised against it directly. This proxy forwards every
request to the emulator and, per request, may instead answer with the service's real throttling
or 5xx error, reset the connection before or after the request reaches the emulator, or delay it::

    with FaultProxy(emulator.endpoint_url, [FaultRule("dynamodb:PutItem", "throttle", 0.3)]) as proxy:
        ddb = make_client("dynamodb", AwsTarget("us-east-1", proxy.endpoint_url))

- The operation of a request is ``service:Operation``: DynamoDB, DynamoDB Streams and SQS (JSON
  protocol) by their ``X-Amz-Target``; S3 (path-style addressing) by method, query and headers.
  Only these four services are faulted; anything else (EventBridge, Glue, IAM, the moto API) is
  named, counted and forwarded untouched.
- Per request and per fault kind the first rule whose ``operation`` matches is rolled with one
  seeded ``random.Random``: every matching kind draws exactly one number, whether or not an earlier
  kind already fired, so a single-threaded sequence of requests gets the same decisions for the
  same seed. ``latency`` combines with the others; of the rest the first that fires in the order
  ``reset_before, throttle, error500, reset_after`` wins.
- Request bodies are buffered (a chunked request is forwarded de-chunked with a Content-Length);
  responses with a Content-Length are streamed through, others are buffered. Client connections
  are kept alive; each client connection has its own upstream connection.

Only the standard library is used.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import select
import socket
import socketserver
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

KINDS = ("throttle", "error500", "reset_before", "reset_after", "latency")
# The order in which the kinds that replace the normal answer are tried; latency is applied first.
_EXCLUSIVE_KINDS = ("reset_before", "throttle", "error500", "reset_after")
FAULTED_SERVICES = frozenset({"dynamodb", "dynamodbstreams", "sqs", "s3"})

_TARGET_SERVICES = {
    "DynamoDB_20120810": "dynamodb",
    "DynamoDBStreams_20120810": "dynamodbstreams",
    "AmazonSQS": "sqs",
    "AWSEvents": "events",
    "AWSGlue": "glue",
}
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
    }
)
_COPY_CHUNK = 1 << 20
_JSON_10 = "application/x-amz-json-1.0"


@dataclass(frozen=True)
class FaultRule:
    """Inject ``kind`` into a fraction ``rate`` of the requests whose operation matches.

    ``operation`` is ``"*"``, ``"service:*"`` or ``"service:Operation"`` (e.g. ``"dynamodb:PutItem"``,
    ``"s3:CopyObject"``, ``"dynamodbstreams:GetRecords"``, ``"sqs:ReceiveMessage"``).
    """

    operation: str
    kind: str
    rate: float
    latency_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"FaultRule.kind: {self.kind!r} is not one of {', '.join(KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"FaultRule.rate: {self.rate!r} is not between 0 and 1")
        if self.latency_seconds < 0:
            raise ValueError(f"FaultRule.latency_seconds: {self.latency_seconds!r} is negative")
        if self.operation != "*" and ":" not in self.operation:
            raise ValueError(f"FaultRule.operation: {self.operation!r} is not '*' or 'service:Operation'")

    def matches(self, operation: str) -> bool:
        if self.operation == "*":
            return True
        service, _, name = self.operation.partition(":")
        if name == "*":
            return operation.partition(":")[0] == service
        return self.operation == operation


# --------------------------------------------------------------------------- naming requests


class HeaderLookup(Protocol):
    """Case-insensitive header lookup, as ``email.message.Message`` (``handler.headers``) offers."""

    def get(self, name: str, /) -> str | None: ...


_EMULATOR_PATHS = ("/moto-api", "/_ministack")  # the emulators' own API (never a ferry bucket)


def identify_operation(method: str, target: str, headers: HeaderLookup, body: bytes = b"") -> str:
    """``service:Operation`` of a request; ``target`` is its path and query.

    JSON-protocol services by ``X-Amz-Target``; otherwise the service of the SigV4 credential scope
    (query-protocol services such as IAM are named by the ``Action`` of their form body); unsigned
    requests are S3, except the emulator's own API, ``/moto-api`` or ``/_ministack`` (``other:GET``)."""
    method = method.upper()
    amz_target = headers.get("X-Amz-Target") or ""
    if amz_target:
        prefix, _, name = amz_target.rpartition(".")
        return f"{_TARGET_SERVICES.get(prefix) or _scope_service(headers, target) or prefix}:{name}"
    service = _scope_service(headers, target)
    if service is None:
        if urlsplit(target).path.startswith(_EMULATOR_PATHS):
            return f"other:{method}"
        service = "s3"
    if service == "s3":
        return f"s3:{_s3_operation(method, target, headers)}"
    if body and "x-www-form-urlencoded" in (headers.get("Content-Type") or ""):
        action = dict(parse_qsl(body.decode("utf-8", "replace"))).get("Action")
        if action:
            return f"{service}:{action}"
    return f"{service}:{method}"


def _scope_service(headers: HeaderLookup, target: str) -> str | None:
    """The service of the SigV4 credential scope ``<key>/<date>/<region>/<service>/aws4_request``,
    from the Authorization header or a presigned URL's X-Amz-Credential."""
    credential = ""
    authorization = headers.get("Authorization") or ""
    if "Credential=" in authorization:
        credential = authorization.split("Credential=", 1)[1].split(",", 1)[0]
    else:
        credential = dict(parse_qsl(urlsplit(target).query)).get("X-Amz-Credential", "")
    parts = credential.strip().split("/")
    return parts[-2] if len(parts) >= 5 and parts[-1] == "aws4_request" else None


_BUCKET_SUBRESOURCES = {
    "notification": "BucketNotificationConfiguration",
    "versioning": "BucketVersioning",
    "tagging": "BucketTagging",
    "policy": "BucketPolicy",
    "lifecycle": "BucketLifecycleConfiguration",
    "cors": "BucketCors",
    "encryption": "BucketEncryption",
    "acl": "BucketAcl",
    "location": "BucketLocation",
    "website": "BucketWebsite",
    "logging": "BucketLogging",
    "replication": "BucketReplication",
    "accelerate": "BucketAccelerateConfiguration",
    "requestPayment": "BucketRequestPayment",
    "ownershipControls": "BucketOwnershipControls",
    "publicAccessBlock": "PublicAccessBlock",
    "object-lock": "ObjectLockConfiguration",
    "inventory": "BucketInventoryConfiguration",
    "metrics": "BucketMetricsConfiguration",
    "analytics": "BucketAnalyticsConfiguration",
    "intelligent-tiering": "BucketIntelligentTieringConfiguration",
}
_VERBS = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}


def _s3_operation(method: str, target: str, headers: HeaderLookup) -> str:
    """The S3 operation of a path-style request (``/bucket`` or ``/bucket/key``)."""
    method = method.upper()
    split = urlsplit(target)
    query = {k for k, _ in parse_qsl(split.query, keep_blank_values=True)}
    path = split.path.lstrip("/")
    if not path:
        return "ListBuckets"
    key = path.partition("/")[2]
    copy = bool(headers.get("x-amz-copy-source"))
    if key:
        if method == "HEAD":
            return "HeadObject"
        if method == "GET":
            for sub, name in (("tagging", "GetObjectTagging"), ("uploadId", "ListParts"), ("acl", "GetObjectAcl")):
                if sub in query:
                    return name
            return "GetObjectAttributes" if "attributes" in query else "GetObject"
        if method == "PUT":
            if "tagging" in query:
                return "PutObjectTagging"
            if copy:
                return "UploadPartCopy" if "partNumber" in query else "CopyObject"
            if "partNumber" in query and "uploadId" in query:
                return "UploadPart"
            return "PutObjectAcl" if "acl" in query else "PutObject"
        if method == "POST":
            if "uploads" in query:
                return "CreateMultipartUpload"
            if "uploadId" in query:
                return "CompleteMultipartUpload"
            return "RestoreObject" if "restore" in query else "PostObject"
        if method == "DELETE":
            if "uploadId" in query:
                return "AbortMultipartUpload"
            return "DeleteObjectTagging" if "tagging" in query else "DeleteObject"
        return method
    if method == "HEAD":
        return "HeadBucket"
    if method == "POST":
        return "DeleteObjects" if "delete" in query else "PostBucket"
    if method == "GET":
        if "list-type" in query:
            return "ListObjectsV2"
        if "versions" in query:
            return "ListObjectVersions"
        if "uploads" in query:
            return "ListMultipartUploads"
    verb = _VERBS.get(method)
    if verb is None:
        return method
    for sub, name in _BUCKET_SUBRESOURCES.items():
        if sub in query:
            return f"{verb}{name}"
    return {"GET": "ListObjects", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}[method]


# An intercept sees every request the fault rules let through (operation, body) and answers with an
# Answer to send instead of forwarding, a rewrite ``(status, body) -> body`` for the upstream answer
# (buffered, its x-amz-crc32 recomputed when the body changes), or None to forward as usual. The
# bench's capacity emulator (bench/throttle_proxy.py) is one.
Rewrite = Callable[[int, bytes], bytes]
Intercept = Callable[[str, bytes], "Answer | Rewrite | None"]


# --------------------------------------------------------------------------- fault answers


@dataclass(frozen=True)
class Answer:
    """An HTTP answer the proxy sends instead of forwarding the request."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _json_error(status: int, type_: str, message: str, extra: tuple[tuple[str, str], ...] = ()) -> Answer:
    request_id = uuid.uuid4().hex
    body = json.dumps({"__type": type_, "message": message}).encode()
    return Answer(status, (("Content-Type", _JSON_10), ("x-amzn-RequestId", request_id), *extra), body)


def _s3_error(status: int, code: str, message: str, method: str) -> Answer:
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>ferry-fault-proxy</HostId></Error>"
    ).encode()
    # A HEAD answer has no body (botocore then names the error by its status code, as with AWS).
    return Answer(
        status,
        (("Content-Type", "application/xml"), ("x-amz-request-id", request_id)),
        b"" if method.upper() == "HEAD" else body,
    )


_DDB = "com.amazonaws.dynamodb.v20120810#"


def fault_answer(service: str, kind: str, method: str = "POST") -> Answer:
    """The answer a ``throttle`` or ``error500`` fault gives for ``service``."""
    if service == "dynamodb":
        if kind == "throttle":
            return _json_error(
                400,
                _DDB + "ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded. "
                "Consider increasing your provisioning level with the UpdateTable API.",
            )
        return _json_error(500, _DDB + "InternalServerError", "Internal server error")
    if service == "dynamodbstreams":
        if kind == "throttle":
            return _json_error(400, _DDB + "LimitExceededException", "Rate exceeded for shard")
        return _json_error(500, _DDB + "InternalServerError", "Internal server error")
    if service == "sqs":
        if kind == "throttle":
            return _json_error(
                400,
                "com.amazonaws.sqs#RequestThrottled",
                "Request is throttled.",
                (("x-amzn-query-error", "RequestThrottled;Sender"),),
            )
        return _json_error(
            500,
            "com.amazonaws.sqs#InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
            (("x-amzn-query-error", "InternalFailure;Receiver"),),
        )
    if service == "s3":
        if kind == "throttle":
            return _s3_error(503, "SlowDown", "Please reduce your request rate.", method)
        return _s3_error(500, "InternalError", "We encountered an internal error. Please try again.", method)
    raise ValueError(f"service: {service!r} is not faulted")


# --------------------------------------------------------------------------- the proxy


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for clients to close their keep-alive connections
    request_queue_size = 128  # socketserver's 5 stalls clients that open many connections at once
    proxy: FaultProxy

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # HTTPServer's adds a reverse DNS lookup we do not need
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that was killed or reset mid-request (the chaos campaign does both on purpose)
        # is routine here: log it quietly instead of socketserver's traceback on stderr.
        log.debug("fault proxy: connection from %s ended abruptly", client_address, exc_info=True)


class FaultProxy:
    """``with FaultProxy(emulator.endpoint_url, rules, seed=1) as proxy: proxy.endpoint_url``.

    The listening socket is bound (to 127.0.0.1 and a free port) when the proxy is constructed, so
    ``endpoint_url`` is known at once; ``start`` serves it in a daemon thread. A proxy is started once.
    """

    def __init__(
        self,
        upstream_url: str,
        rules: Sequence[FaultRule] = (),
        *,
        seed: int = 0,
        listen_backlog: int = 128,
        intercept: Intercept | None = None,
    ) -> None:
        upstream = urlsplit(upstream_url)
        if upstream.scheme != "http" or not upstream.hostname:
            raise ValueError(f"upstream_url: {upstream_url!r} is not an http:// URL")
        self.upstream_host = upstream.hostname
        self.upstream_port = upstream.port or 80
        self.upstream_timeout = 300.0
        self.intercept = intercept
        self._rules: tuple[FaultRule, ...] = tuple(rules)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._injected: dict[str, int] = {}
        self._requests: dict[str, int] = {}
        self._body_bytes: dict[str, int] = {}
        self._connections: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), _ProxyHandler)
        self._server.proxy = self
        # socketserver listens with a backlog of 5; a client that opens hundreds of connections at once
        # (s5cmd does) would wait for SYN retransmits: listen again with room for them.
        self._server.socket.listen(listen_backlog)
        self.port = int(self._server.server_address[1])
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("the fault proxy is already started")
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.shutdown()
            thread.join(timeout=5)
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # wake handler threads blocked on idle keep-alive connections
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ rules and counts

    def set_rules(self, rules: Sequence[FaultRule]) -> None:
        """Replace the rules; the next request is decided with the new ones."""
        new = tuple(rules)
        with self._lock:
            self._rules = new

    def rules(self) -> tuple[FaultRule, ...]:
        with self._lock:
            return self._rules

    def injected(self) -> dict[str, int]:
        """``service:Operation:kind`` → how many faults of that kind were injected."""
        with self._lock:
            return dict(self._injected)

    def requests(self) -> dict[str, int]:
        """``service:Operation`` → how many requests arrived (forwarded or faulted)."""
        with self._lock:
            return dict(self._requests)

    def body_bytes(self) -> dict[str, int]:
        """``service:Operation`` → request plus response body bytes forwarded."""
        with self._lock:
            return dict(self._body_bytes)

    def _count_bytes(self, operation: str, count: int) -> None:
        with self._lock:
            self._body_bytes[operation] = self._body_bytes.get(operation, 0) + count

    def _decide(self, operation: str) -> tuple[list[str], float]:
        """Count one request and roll its faults: the kinds that fire (latency first) and the
        latency to add. Thread-safe; one draw per kind that has a matching rule."""
        service = operation.partition(":")[0]
        fired: list[str] = []
        latency = 0.0
        with self._lock:
            self._requests[operation] = self._requests.get(operation, 0) + 1
            if service not in FAULTED_SERVICES:
                return fired, latency
            rolls: dict[str, bool] = {}
            for kind in KINDS:
                rule = next((r for r in self._rules if r.kind == kind and r.matches(operation)), None)
                if rule is not None:
                    rolls[kind] = self._random.random() < rule.rate
                    if kind == "latency":
                        latency = rule.latency_seconds
            if rolls.get("latency"):
                fired.append("latency")
            exclusive = next((k for k in _EXCLUSIVE_KINDS if rolls.get(k)), None)
            if exclusive is not None:
                fired.append(exclusive)
            for kind in fired:
                key = f"{operation}:{kind}"
                self._injected[key] = self._injected.get(key, 0) + 1
        return fired, latency

    def _track(self, connection: socket.socket, active: bool) -> None:
        with self._lock:
            if active:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # an idle client connection is dropped after this long
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this Nagle + delayed ACK cost 40 ms each
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._upstream: http.client.HTTPConnection | None = None
        self.server.proxy._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._upstream is not None:
                self._upstream.close()
            self.server.proxy._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fault proxy: " + format, *args)

    def do_GET(self) -> None:
        self._proxy()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    # ------------------------------------------------------------------ one request

    def _proxy(self) -> None:
        proxy = self.server.proxy
        try:
            body = self._read_body()
        except (ValueError, OSError) as exc:
            log.warning("fault proxy: unreadable request body: %s", exc)
            self.close_connection = True
            return
        operation = identify_operation(self.command, self.path, self.headers, body)
        fired, latency = proxy._decide(operation)
        if "latency" in fired:
            time.sleep(latency)
        if "reset_before" in fired:
            self._reset()
            return
        for kind in ("throttle", "error500"):
            if kind in fired:
                answer = fault_answer(operation.partition(":")[0], kind, self.command)
                self._answer(answer.status, list(answer.headers), answer.body)
                return
        verdict = proxy.intercept(operation, body) if proxy.intercept is not None else None
        if isinstance(verdict, Answer):
            self._answer(verdict.status, list(verdict.headers), verdict.body)
            return
        if verdict is not None:
            self._forward_rewritten(body, operation, verdict)
            return
        try:
            response = self._forward(body)
        except (OSError, http.client.HTTPException) as exc:
            log.warning("fault proxy: upstream failed for %s: %s", operation, exc)
            self._discard_upstream()
            message = f"fault proxy: upstream failed: {exc}".encode()
            self._answer(502, [("Content-Type", "text/plain")], message)
            return
        if "reset_after" in fired:
            try:
                response.read()  # the request took effect upstream; the client never hears of it
            except (OSError, http.client.HTTPException):
                self._discard_upstream()
            self._reset()
            return
        relayed = self._relay(response)
        proxy._count_bytes(operation, len(body) + relayed)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self._read_exactly(size))
                self.rfile.readline(65537)  # the CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self._read_exactly(length) if length else b""

    def _read_exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) != size:
            raise ValueError(f"the client sent {len(data)} of {size} body bytes")
        return data

    def _upstream_connection(self) -> http.client.HTTPConnection:
        proxy = self.server.proxy
        connection = self._upstream
        if connection is not None and connection.sock is not None:
            readable, _, _ = select.select([connection.sock], [], [], 0)
            if readable:  # closed by the emulator while idle (or stray bytes): start afresh
                connection.close()
        if connection is None:
            connection = http.client.HTTPConnection(
                proxy.upstream_host, proxy.upstream_port, timeout=proxy.upstream_timeout
            )
            self._upstream = connection
        return connection

    def _discard_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None

    def _forward(self, body: bytes) -> http.client.HTTPResponse:
        connection = self._upstream_connection()
        connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                connection.putheader(name, value)
        if body or self.command in {"POST", "PUT", "PATCH"} or "Content-Length" in self.headers:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        return connection.getresponse()

    def _forward_rewritten(self, body: bytes, operation: str, rewrite: Rewrite) -> None:
        """Forward, read the whole answer, let ``rewrite`` change its body, send it."""
        try:
            response = self._forward(body)
            status, reason, headers, data = response.status, response.reason, response.getheaders(), response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._discard_upstream()
            self._answer(
                502, [("Content-Type", "text/plain")], f"fault proxy: {operation}: upstream failed: {exc}".encode()
            )
            return
        if response.will_close:
            self._discard_upstream()
        rewritten = rewrite(status, data)
        kept = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"]
        if rewritten != data:
            kept = [(k, v) for k, v in kept if k.lower() != "x-amz-crc32"]
            if any(k.lower() == "x-amz-crc32" for k, _ in headers):
                kept.append(("x-amz-crc32", str(zlib.crc32(rewritten) & 0xFFFFFFFF)))
        self._send_head(status, reason, [*kept, ("Content-Length", str(len(rewritten)))])
        self.wfile.write(rewritten)
        self.server.proxy._count_bytes(operation, len(body) + len(data))

    def _relay(self, response: http.client.HTTPResponse) -> int:
        """Send the upstream answer to the client; the number of body bytes relayed."""
        relayed = 0
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        no_body = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        length = response.getheader("Content-Length")
        try:
            if no_body:
                response.read()
                if length is not None:
                    headers.append(("Content-Length", length))
                self._send_head(response.status, response.reason, headers)
            elif length is not None:
                self._send_head(response.status, response.reason, [*headers, ("Content-Length", length)])
                remaining = int(length)
                while remaining > 0:
                    chunk = response.read(min(_COPY_CHUNK, remaining))
                    if not chunk:
                        raise http.client.IncompleteRead(b"", remaining)
                    relayed += len(chunk)
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
                if not int(length):
                    response.read()  # marks an empty answer complete: else the next request on it is refused
            else:
                data = response.read()
                relayed = len(data)
                self._send_head(response.status, response.reason, [*headers, ("Content-Length", str(len(data)))])
                self.wfile.write(data)
        except (OSError, http.client.HTTPException) as exc:
            log.debug("fault proxy: relaying the answer failed: %s", exc)  # the client went away
            self._discard_upstream()
            self.close_connection = True
        if response.will_close:
            self._discard_upstream()
        return relayed

    def _send_head(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self._send_head(status, http.client.responses.get(status, ""), [*headers, ("Content-Length", str(len(body)))])
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _reset(self) -> None:
        """Close the client connection abruptly: SO_LINGER 0 makes the kernel send RST, not FIN."""
        self.close_connection = True
        connection = self.connection
        try:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        connection.close()
        self.rfile.close()  # the last reference to the socket: now it really closes
