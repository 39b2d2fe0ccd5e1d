"""Line 4 — client overhead: CPU microseconds per item of ferry's segment pipeline, against an
endpoint that answers instantly, so that only the client's own cost is measured.

The endpoint (``python -m bench.overhead serve``) is a stdlib HTTP server in its own process (its
CPU is not counted) that answers DynamoDB's JSON protocol by ``X-Amz-Target``:
- Scan: a pre-serialized page of ``PAGE_ITEMS`` items (the ~1 KB all-types items of line 2, so a page
  is DynamoDB's 1 MB) with a LastEvaluatedKey until the segment's total is served. The total is part
  of the table's name (``src-20000``), so the endpoint keeps no state.
- PutItem, UpdateItem, DeleteItem, GetItem: ``{}``; BatchWriteItem: ``{"UnprocessedItems": {}}``;
  DescribeTable: a canned provisioned table whose capacity ferry's budget never reaches.
- ``ConsumedCapacity`` (1 unit per write, a page's units per Scan) when asked for, as DynamoDB does.

Each approach runs in a fresh client subprocess (``python -m bench.overhead client NAME URL ITEMS``):
imports and a 200-item warm-up first, then ``time.process_time()`` (every thread of that process,
user + system) around a 1,000-item copy and an ITEMS copy, each building its own clients as it
would on Glue. CPU per item is the slope between the two, (cpu(ITEMS) - cpu(1,000)) / (ITEMS - 1,000):
fixed costs per run (client creation, boto3's resource model: 50-300 ms) cancel out and are
reported apart. The approaches:
- ferry: ``ferry.tables.backfill.copy_segment(plan, 0)``, the plan from ``plan_backfill`` (which reads
  DescribeTable), default 8 splits and 8 write threads;
- naive: a boto3 resource ``Table.scan``, each page's items written with ``put_item`` by 10 threads;
- batch_writer (for information): ``Table.scan`` of the segment and ``Table.batch_writer()`` in one thread.
Glue G.1X workers (4 vCPU) per 10,000 items/s = ceil(10,000 × µs per item / 1e6 / 4).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import socket
import socketserver
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from bench.common import Row, Settings, alternate, fmt

REGION = "us-east-1"
PAGE_ITEMS = 1000  # 1,000 items of 1,000 bytes: DynamoDB's 1 MB page
ITEMS = 4_000  # per approach and round: 3 rounds of 3 approaches stay within the line's 60 s
QUICK_ITEMS = 2_500
SMALL_ITEMS = 1_000  # the short run whose CPU is subtracted (fixed costs cancel)
WARMUP_ITEMS = 200
NAIVE_THREADS = 10
G1X_VCPUS = 4
ROOT = Path(__file__).resolve().parent.parent
_TOTAL_IN_NAME = re.compile(r"-(\d+)$")
_WANTS_CAPACITY = re.compile(rb'"ReturnConsumedCapacity":\s*"(TOTAL|INDEXES)"')

# --------------------------------------------------------------------------- the instant endpoint


def _page_body(items_json: bytes, count: int, last_key: dict[str, Any] | None, units: float | None) -> bytes:
    parts = [b'{"Items":', items_json, f',"Count":{count},"ScannedCount":{count}'.encode()]
    if last_key is not None:
        parts.append(b',"LastEvaluatedKey":' + json.dumps(last_key).encode())
    if units is not None:
        parts.append(b',"ConsumedCapacity":' + json.dumps({"TableName": "t", "CapacityUnits": units}).encode())
    parts.append(b"}")
    return b"".join(parts)


class _Endpoint(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    pages: ClassVar[dict[int, bytes]] = {}  # item count → the serialized items of a page that long

    def setup(self) -> None:
        super().setup()
        # headers and body are separate writes: without this, Nagle + delayed ACK add 40 ms a request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @classmethod
    def items_json(cls, count: int) -> bytes:
        if count not in cls.pages:
            from bench.capacity import bench_item
            from ferry.wire import encode_lambda_value

            rng = random.Random(4)
            cls.pages[count] = json.dumps([encode_lambda_value(bench_item(rng, i)) for i in range(count)]).encode()
        return cls.pages[count]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        consumed = _WANTS_CAPACITY.search(body) is not None
        if operation == "Scan":
            answer = self._scan(json.loads(body), consumed)
        elif operation in ("PutItem", "UpdateItem", "DeleteItem"):
            answer = b'{"ConsumedCapacity":{"TableName":"t","CapacityUnits":1.0}}' if consumed else b"{}"
        elif operation == "BatchWriteItem":
            answer = b'{"UnprocessedItems":{}}'
        elif operation == "GetItem":
            answer = b"{}"
        elif operation == "DescribeTable":
            answer = json.dumps({"Table": _description(json.loads(body)["TableName"])}).encode()
        else:
            self._send(400, b'{"__type":"com.amazonaws.dynamodb.v20120810#UnknownOperationException"}')
            return
        self._send(200, answer)

    def _scan(self, request: dict[str, Any], consumed: bool) -> bytes:
        match = _TOTAL_IN_NAME.search(request["TableName"])
        total = int(match.group(1)) if match else PAGE_ITEMS
        start = request.get("ExclusiveStartKey")
        served = int(start["pk"]["S"].rpartition("#")[2]) + 1 if start else 0
        count = min(PAGE_ITEMS, int(request.get("Limit") or PAGE_ITEMS), total - served)
        served += count
        last_key = {"pk": {"S": f"item#{served - 1:07d}"}, "sk": {"N": "0"}} if served < total else None
        units = math.ceil(count * 1000 / 4096) / 2 if consumed else None
        return _page_body(self.items_json(count), count, last_key, units)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _description(name: str) -> dict[str, Any]:
    return {
        "TableName": name,
        "TableArn": f"arn:aws:dynamodb:{REGION}:123456789012:table/{name}",
        "TableStatus": "ACTIVE",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        "BillingModeSummary": {"BillingMode": "PROVISIONED"},
        # far above what one client process can use: ferry's buckets never make it wait
        "ProvisionedThroughput": {"ReadCapacityUnits": 10**9, "WriteCapacityUnits": 10**9, "NumberOfDecreasesToday": 0},
        "ItemCount": 0,
        "TableSizeBytes": 0,
        "CreationDateTime": 1.7e9,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # without HTTPServer's reverse DNS lookup
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


def serve() -> None:
    """Serve on 127.0.0.1 and a free port; print the port, then serve until killed."""
    _Endpoint.items_json(PAGE_ITEMS)  # serialize the full page before the first request
    server = _Server(("127.0.0.1", 0), _Endpoint)
    print(server.server_address[1], flush=True)
    server.serve_forever()


# --------------------------------------------------------------------------- the measured clients


def _ferry(endpoint: str, items: int) -> int:
    from ferry.clients import AwsTarget, make_client
    from ferry.spec import parse_spec
    from ferry.tables.backfill import copy_segment, plan_backfill

    spec = parse_spec(
        {
            "region": REGION,
            "endpoint_url": endpoint,
            "tables": [{"source": f"src-{items}", "target": f"dst-{items}", "protocol": "insert-only"}],
        }
    )
    plan = plan_backfill(spec, spec.tables[0], make_client("dynamodb", AwsTarget(REGION, endpoint)))
    result = copy_segment(plan, 0)
    if result.status != "done":
        raise RuntimeError(f"copy_segment failed: {result.error}")
    return result.written


def _resource(endpoint: str) -> Any:
    import boto3

    return boto3.session.Session().resource("dynamodb", region_name=REGION, endpoint_url=endpoint)


def _naive(endpoint: str, items: int) -> int:
    resource = _resource(endpoint)
    source, target = resource.Table(f"src-{items}"), resource.Table(f"dst-{items}")
    written = 0
    kwargs: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=NAIVE_THREADS) as pool:
        while True:
            page = source.scan(**kwargs)
            for _ in pool.map(lambda item: target.put_item(Item=item), page["Items"]):
                written += 1
            if "LastEvaluatedKey" not in page:
                return written
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _batch_writer(endpoint: str, items: int) -> int:
    resource = _resource(endpoint)
    source, target = resource.Table(f"src-{items}"), resource.Table(f"dst-{items}")
    written = 0
    kwargs: dict[str, Any] = {"Segment": 0, "TotalSegments": 8}
    with target.batch_writer() as writer:
        while True:
            page = source.scan(**kwargs)
            for item in page["Items"]:
                writer.put_item(Item=item)
                written += 1
            if "LastEvaluatedKey" not in page:
                return written
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


APPROACHES: dict[str, Callable[[str, int], int]] = {"ferry": _ferry, "naive": _naive, "batch_writer": _batch_writer}


def _cpu(copy: Callable[[str, int], int], endpoint: str, items: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    written = copy(endpoint, items)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if written != items:
        raise RuntimeError(f"wrote {written} of {items} items")
    return cpu, wall


def measure(name: str, endpoint: str, items: int) -> dict[str, Any]:
    """In this (fresh) process: warm up, then copy SMALL_ITEMS and ``items``. The CPU per item is the
    slope between the two, so what every run pays once (clients, boto3's resource model, thread
    pools) is reported apart as ``fixed_ms`` instead of being spread over the items."""
    copy = APPROACHES[name]
    copy(endpoint, WARMUP_ITEMS)
    small_cpu, _ = _cpu(copy, endpoint, SMALL_ITEMS)
    cpu, wall = _cpu(copy, endpoint, items)
    per_item, fixed = marginal(small_cpu, SMALL_ITEMS, cpu, items)
    return {
        "items": items,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "small_run_cpu_seconds": small_cpu,
        "us_per_item": per_item * 1e6,
        "fixed_ms": fixed * 1e3,
    }


def marginal(small_cpu: float, small_items: int, cpu: float, items: int) -> tuple[float, float]:
    """(CPU seconds per item, fixed CPU seconds per run) from two runs of different sizes."""
    if items <= small_items:
        raise ValueError("the measured run must copy more items than the small one")
    per_item = (cpu - small_cpu) / (items - small_items)
    return per_item, small_cpu - small_items * per_item


# --------------------------------------------------------------------------- the line


def glue_workers(us_per_item: float, items_per_second: float = 10_000) -> int:
    """G.1X workers (4 vCPU) whose CPU covers the client side of ``items_per_second``."""
    return math.ceil(items_per_second * us_per_item / 1e6 / G1X_VCPUS)


def _client(name: str, endpoint: str, items: int) -> tuple[float, dict[str, Any]]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    env.pop("AWS_ENDPOINT_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "bench.overhead", "client", name, endpoint, str(items)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"overhead client {name} failed:\n{done.stderr[-2000:]}")
    details: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return details["us_per_item"], details


def _runner(name: str, endpoint: str, items: int) -> Callable[[int], tuple[float, dict[str, Any]]]:
    return lambda _round: _client(name, endpoint, items)


def start_endpoint() -> tuple[subprocess.Popen[str], str]:
    """The instant endpoint in its own process, and its URL. Kill the process when done."""
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.overhead", "serve"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    return server, f"http://127.0.0.1:{int(server.stdout.readline())}"


def run(settings: Settings) -> tuple[list[Row], dict[str, Any]]:
    items = QUICK_ITEMS if settings.quick else ITEMS
    server, endpoint = start_endpoint()
    try:
        results = alternate({name: _runner(name, endpoint, items) for name in APPROACHES}, settings.repeats)
    finally:
        server.kill()
        server.wait(timeout=10)
    ferry, naive, batch = (results[n].median for n in APPROACHES)
    workers = {n: glue_workers(results[n].median) for n in APPROACHES}
    rows = [
        Row(
            line="4",
            measure="client CPU per item (instant endpoint)",
            ferry=f"{fmt(ferry)} µs",
            other="naive",
            other_value=f"{fmt(naive)} µs",
            lead=naive / ferry if ferry else None,
            target="< naive",
            met=ferry < naive,
            note=f"{items:,} items, median of {settings.repeats}; ferry's segment pipeline incl. its conditional "
            "PutItem, capacity buckets and checkpoints",
        ),
        Row(
            line="4",
            measure="client CPU per item (instant endpoint)",
            ferry=f"{fmt(ferry)} µs",
            other="batch_writer (no condition)",
            other_value=f"{fmt(batch)} µs",
            lead=batch / ferry if ferry else None,
            note="for information: 25 items per request, but no insert-only condition (docs/adr/0001)",
        ),
        Row(
            line="4",
            measure="Glue G.1X workers per 10,000 items/s (client CPU)",
            ferry=fmt(workers["ferry"]),
            other="naive",
            other_value=fmt(workers["naive"]),
            lead=workers["naive"] / workers["ferry"] if workers["ferry"] else None,
            note=f"batch_writer {workers['batch_writer']}; = ceil(10,000 × µs per item / 1e6 / 4 vCPU)",
        ),
    ]
    details = {
        "items": items,
        "page_items": PAGE_ITEMS,
        "naive_threads": NAIVE_THREADS,
        "us_per_item": {n: {"median": results[n].median, "samples": results[n].samples} for n in APPROACHES},
        "glue_g1x_workers_per_10k_items_per_s": workers,
        "fixed_ms_per_run": {n: statistics.median(d["fixed_ms"] for d in results[n].extra) for n in APPROACHES},
        "runs": {n: results[n].extra for n in APPROACHES},
    }
    return rows, details


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="the instant endpoint (prints its port)")
    client = sub.add_parser("client", help="measure one approach in this process (prints JSON)")
    client.add_argument("approach", choices=sorted(APPROACHES))
    client.add_argument("endpoint")
    client.add_argument("items", type=int)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve()
    else:
        print(json.dumps(measure(args.approach, args.endpoint, args.items)))


if __name__ == "__main__":
    main()
