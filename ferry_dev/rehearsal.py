"""`make deploy-local`: the deployment rehearsed against the embedded emulator.

It runs the documented commands in their documented order, each in its own process as a user
runs it: `ferry init --sources-only` and `ferry tfvars` (what `make deploy` does before
Terraform), then the quick path — `ferry init`, `ferry chalice-config`, `chalice deploy --stage`,
`ferry wire` — and reads back what exists: the held consumers of the replay table and bucket (no
stream mapping; the events queue's mapping disabled) next to the insert-only table's running one.
Then the copy — `ferry backfill --stage`, which runs the Glue scripts on local Spark and releases
each replay copy for the stage, as the Glue jobs do — and `ferry release --stage` (which finds them
released and leaves them so), and it reads back the released consumers. Terraform itself cannot run
here (no provider downloads); its variables are written and checked by the tests.

On either emulator (``FERRY_EMULATOR``, ``ferry deploy-local --emulator``). On ministack the deployed
functions also run, as on AWS: its own event-source mappings invoke them with the deployment package
(Powertools and the vendored core) on its own interpreter, so the rehearsal ends by changing an item
of each table and an object of the bucket and checking that the functions applied every change. moto
runs no Lambda without Docker: there that check is left to tests/e2e/test_ministack_wiring.py.

Last, the switch's first step: `ferry finalize` of the insert-only table and `ferry reverse --stage`, with
the reverse functions' mappings read back and, on ministack, a change of each new table and of the new
bucket carried back to the old side by the deployed reverse functions (docs/adr/0009).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferry.aws import object_bytes_or_none, queue_url_or_none, stream_arn_of
from ferry.clients import AwsTarget, make_client
from ferry.deploy import (
    BUCKET_FUNCTION,
    BUCKET_REVERSE_FUNCTION,
    DLQ_SUFFIX,
    FUNCTIONS,
    QUEUE_RETENTION_SECONDS,
    STREAM_FUNCTION,
    STREAM_REVERSE_FUNCTION,
    bucket_events_settings,
    function_name,
    lambda_spec_json,
    reverse_bucket_events_settings,
    reverse_failure_queue_name,
    reverse_stream_mapping_settings,
    stream_mapping_settings,
)
from ferry.errors import SetupError
from ferry.jobs import KINDS, TABLE, job_name
from ferry.runlog import RunLog
from ferry.spec import Spec, parse_spec, spec_to_dict
from ferry.tables.protocol import PHASE_HOLD, PHASE_REPLAY
from ferry.tables.state import BUCKET, StateStore
from ferry.twoway import reverse_spec
from ferry_dev.emulator import DUMMY_CREDENTIALS, MINISTACK, MOTO, Emulator, emulator_kind, use_dummy_credentials

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

REPO = Path(__file__).resolve().parent.parent
ITEMS = 6  # seeded in each table and under the bucket's prefix (before capture): what the copies must carry
APPLIED_WITHIN_SECONDS = 60.0  # ministack: a live change reaches the target through the deployed functions


@dataclass
class Rehearsal:
    stage: str
    spec: Spec
    emulator: str = MOTO
    tfvars: dict[str, Any] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        self.checks.append((what, ok, detail))


def _seed_sources(endpoint: str) -> None:
    """A source table with the parts Terraform must reproduce (GSI, LSI, TTL) and a source
    bucket that already sends notifications elsewhere (which must be kept)."""
    where = AwsTarget("us-east-1", endpoint)
    ddb, s3, sqs = make_client("dynamodb", where), make_client("s3", where), make_client("sqs", where)
    ddb.create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "customer", "AttributeType": "S"},
            {"AttributeName": "placed", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-customer",
                "KeySchema": [{"AttributeName": "customer", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        LocalSecondaryIndexes=[
            {
                "IndexName": "by-placed",
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "placed", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["total"]},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_time_to_live(TableName="orders", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    for i in range(ITEMS):
        ddb.put_item(TableName="orders", Item={"pk": {"S": f"order#{i}"}, "sk": {"N": str(i)}, "total": {"N": "9.5"}})
    ddb.create_table(
        TableName="invoices",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(ITEMS):
        ddb.put_item(TableName="invoices", Item={"pk": {"S": f"invoice#{i}"}, "amount": {"N": str(10 * i)}})
    s3.create_bucket(Bucket="media-src")
    for i in range(ITEMS):
        s3.put_object(Bucket="media-src", Key=f"photos/{i}.jpg", Body=b"jpeg" * (i + 1))
    audit = sqs.create_queue(QueueName="audit")["QueueUrl"]
    audit_arn = sqs.get_queue_attributes(QueueUrl=audit, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket="media-src",
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": audit_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )


def _run(command: list[str], endpoint: str, cwd: Path = REPO) -> list[str]:
    """One documented command, run as a user runs it (its own process, the emulator's endpoint);
    its output lines. A failing step stops the rehearsal with what it printed."""
    env = {**os.environ, **DUMMY_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    env["COLUMNS"] = "240"  # one step, one line
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} … failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return [line.removeprefix("• ") for line in result.stdout.splitlines() if line.strip()]


def run_ferry(*args: str, endpoint: str) -> list[str]:
    """``ferry <args>`` in its own process against ``endpoint``; its output lines."""
    return _run([sys.executable, "-m", "ferry_cli.main", *args], endpoint)


def deploy_stage(spec_file: Path, stage: str, endpoint: str, workdir: Path) -> list[str]:
    """The quick path after ``ferry init``, as documented: ``ferry chalice-config``, ``chalice deploy
    --stage`` (a copy of the app with its core vendored, made in ``workdir``) and ``ferry wire`` (the
    mappings, with the settings Terraform gets). What each step printed, one line each."""
    spec_args = ("--spec", str(spec_file))
    (app,) = _run([sys.executable, "-m", "ferry_cli.artifacts", "copy-app", "--out", str(workdir)], endpoint)
    written = run_ferry("chalice-config", *spec_args, "--stage", stage, "--app-dir", app, endpoint=endpoint)
    steps = [f"ferry chalice-config: {Path(line.removeprefix('wrote ')).name}" for line in written]
    chalice = str(Path(sys.executable).parent / "chalice")
    steps += [f"chalice deploy: {line}" for line in _run([chalice, "deploy", "--stage", stage], endpoint, Path(app))]
    steps += [f"ferry wire: {line}" for line in run_ferry("wire", *spec_args, "--stage", stage, endpoint=endpoint)]
    return steps


def rehearsal_spec(endpoint: str) -> Spec:
    """A replay table and bucket (the default protocol) and an insert-only table."""
    return parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": endpoint,
            "tables": [
                {"source": "orders", "target": "orders-v2"},
                {"source": "invoices", "target": "invoices-v2", "protocol": "insert-only"},
            ],
            "buckets": [{"source": "media-src", "target": "media-dst", "prefix": "photos/"}],
            "backfill": {"splits": 2},
            "s3": {"splits": 2},
        }
    )


def rehearse(stage: str = "local", endpoint: str | None = None, emulator: str | None = None) -> Rehearsal:
    """Against ``endpoint`` (an emulator of kind ``emulator`` the caller keeps, to look at afterwards) or
    a fresh one of that kind; ``emulator`` None: ``FERRY_EMULATOR``, else ministack."""
    use_dummy_credentials()
    if endpoint is None:
        with Emulator(kind=emulator) as emu:
            return rehearse(stage, emu.endpoint_url, emu.kind)
    _seed_sources(endpoint)
    spec = rehearsal_spec(endpoint)
    run = Rehearsal(stage, spec, emulator_kind(emulator))
    with tempfile.TemporaryDirectory() as tmp:
        spec_file, tfvars = Path(tmp) / "ferry.yaml", Path(tmp) / f"{stage}.ferry.tfvars.json"
        spec_file.write_text(json.dumps(spec_to_dict(spec)), encoding="utf-8")  # JSON is YAML
        spec_args = ("--spec", str(spec_file))
        run.steps += [
            f"ferry init --sources-only: {line}"
            for line in run_ferry("init", *spec_args, "--sources-only", endpoint=endpoint)
        ]
        run_ferry("tfvars", *spec_args, "--stage", stage, "--out", str(tfvars), endpoint=endpoint)
        run.tfvars = json.loads(tfvars.read_text(encoding="utf-8"))
        run.steps.append(f"ferry tfvars: wrote {tfvars.name}")
        run.steps += [f"ferry init: {line}" for line in run_ferry("init", *spec_args, endpoint=endpoint)]
        run.steps += deploy_stage(spec_file, stage, endpoint, Path(tmp))
        inspect(run, released=False)
        stage_args = ("--stage", stage)
        run.steps += [
            f"ferry backfill: {line}" for line in run_ferry("backfill", *spec_args, *stage_args, endpoint=endpoint)
        ]
        run.steps += [
            f"ferry release: {line}" for line in run_ferry("release", *spec_args, *stage_args, endpoint=endpoint)
        ]
    inspect(run, released=True)
    if run.emulator == MINISTACK:
        check_functions_apply_live_changes(run)
    else:
        run.steps.append(
            f"{run.emulator} runs no Lambda without Docker: the deployed functions were not invoked "
            "(FERRY_EMULATOR=ministack runs them through the emulator's own mappings)"
        )
    rehearse_reverse(run, endpoint)
    return run


def rehearse_reverse(run: Rehearsal, endpoint: str) -> None:
    """The switch's first step (docs/adr/0009): `ferry finalize` of the insert-only table (a replay copy is
    done once released), then `ferry reverse --stage`: the new side's change capture and the deployed reverse
    functions' mappings, read back; on ministack the reverse functions then carry a change of each new table
    and of the new bucket back to the old side."""
    insert_only = dataclasses.replace(run.spec, tables=tuple(t for t in run.spec.tables if not t.replay), buckets=())
    with tempfile.TemporaryDirectory() as tmp:
        finalize_file, spec_file = Path(tmp) / "insert-only.yaml", Path(tmp) / "ferry.yaml"
        finalize_file.write_text(json.dumps(spec_to_dict(insert_only)), encoding="utf-8")
        spec_file.write_text(json.dumps(spec_to_dict(run.spec)), encoding="utf-8")
        run.steps += [
            f"ferry finalize: {line}" for line in run_ferry("finalize", "--spec", str(finalize_file), endpoint=endpoint)
        ]
        run.steps += [
            f"ferry reverse: {line}"
            for line in run_ferry("reverse", "--spec", str(spec_file), "--stage", run.stage, endpoint=endpoint)
        ]
    inspect_reverse(run)
    if run.emulator == MINISTACK:
        check_reverse_applies_live_changes(run)


def inspect_reverse(run: Rehearsal) -> None:
    """After `ferry reverse --stage`: each new table's stream mapped to ``table_stream_reverse`` (TRIM_HORIZON,
    the safety settings, the reverse on-failure queue) and the reverse events queue (with its DLQ) to
    ``bucket_events_reverse``, all enabled."""
    home = run.spec.home_where()
    lam, ddb, sqs = make_client("lambda", home), make_client("dynamodb", home), make_client("sqs", home)
    settings = reverse_stream_mapping_settings(run.spec)
    stream_fn = function_name(run.stage, STREAM_REVERSE_FUNCTION)
    want = {
        "BatchSize": settings.batch_size,
        "MaximumRetryAttempts": settings.maximum_retry_attempts,
        "MaximumRecordAgeInSeconds": settings.maximum_record_age_in_seconds,
        "BisectBatchOnFunctionError": True,
        "StartingPosition": "TRIM_HORIZON",
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "State": "Enabled",
    }
    for mapping in run.spec.tables:
        try:
            found = lam.list_event_source_mappings(EventSourceArn=stream_arn_of(ddb, mapping.target))
        except SetupError as exc:
            run.check(f"reverse: {mapping.target} has its stream", False, str(exc))
            continue
        mappings = found["EventSourceMappings"]
        run.check(
            f"reverse: stream mapping {mapping.target} → {stream_fn}",
            len(mappings) == 1 and str(mappings[0].get("FunctionArn", "")).endswith(f":function:{stream_fn}"),
            f"{len(mappings)}",
        )
        for m in mappings:
            got = {k: m.get(k) for k in want}
            run.check(f"  reverse settings of {m.get('UUID')}", got == want, json.dumps(got, sort_keys=True))
            destination = m.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination", "")
            failures = reverse_failure_queue_name(run.spec)
            run.check("  reverse on-failure destination", destination.endswith(f":{failures}"), destination)
    if not run.spec.buckets:
        return
    events, bucket_fn = reverse_bucket_events_settings(run.spec), function_name(run.stage, BUCKET_REVERSE_FUNCTION)
    queue_url = queue_url_or_none(sqs, events.queue_name)
    run.check(f"reverse: queue {events.queue_name}", queue_url is not None, queue_url or "not found")
    if queue_url is None:
        return
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes.get("RedrivePolicy", "{}"))
    run.check(
        f"  {events.queue_name} has a DLQ",
        redrive.get("deadLetterTargetArn", "").endswith(events.queue_name + DLQ_SUFFIX),
        json.dumps(redrive),
    )
    found_queue = lam.list_event_source_mappings(EventSourceArn=attributes["QueueArn"])["EventSourceMappings"]
    run.check(
        f"  queue mapping {events.queue_name} → {bucket_fn}, enabled",
        [(str(m.get("FunctionArn", "")).rsplit(":", 1)[-1], m.get("State")) for m in found_queue]
        == [(bucket_fn, "Enabled")],
        json.dumps([m.get("State") for m in found_queue]),
    )


def inspect(run: Rehearsal, *, released: bool) -> None:
    """Read back every resource the documentation promises and compare it with the spec: the replay
    consumers held (``released`` False: after the deployment) or let go (after the copy's release)."""
    home = run.spec.home_where()
    lam, ddb = make_client("lambda", home), make_client("dynamodb", home)
    if not released:
        _check_functions(run, lam, make_client("iam", home))
        _check_glue_jobs(run, make_client("glue", home), make_client("iam", home))
    _check_stream_mappings(run, lam, ddb, released=released)
    _check_bucket_events(run, lam, make_client("sqs", home), released=released)
    if released:
        _check_copies(run, ddb, make_client("s3", home))


def check_functions_apply_live_changes(run: Rehearsal, within: float = APPLIED_WITHIN_SECONDS) -> None:
    """After the release, on an emulator that runs Lambdas (ministack): one item of each table and one
    object of the bucket changed at the source, and each change found in its target — applied by the
    deployed ``table_stream`` (the replay table's mapping created by the release, the insert-only one's
    by `ferry wire`) and ``bucket_events`` (the queue mapping the release enabled). Nothing else consumes
    the stream or the queue here. Existing keys are changed, so the copies' counts stay as they were."""
    started = time.time()
    _apply_live_changes(run, run.spec, (STREAM_FUNCTION, BUCKET_FUNCTION), within)
    _check_lag_samples(run, make_client("dynamodb", run.spec.home_where()), started)


def check_reverse_applies_live_changes(run: Rehearsal, within: float = APPLIED_WITHIN_SECONDS) -> None:
    """After `ferry reverse --stage`, on ministack: one item of each NEW table and one object of the new bucket
    changed, and each change found on the old side — applied by the deployed ``table_stream_reverse`` and
    ``bucket_events_reverse`` through the mappings `ferry reverse` made (docs/adr/0009)."""
    _apply_live_changes(run, reverse_spec(run.spec), (STREAM_REVERSE_FUNCTION, BUCKET_REVERSE_FUNCTION), within)


def _apply_live_changes(run: Rehearsal, spec: Spec, functions: tuple[str, str], within: float) -> None:
    """Change an existing item of each of ``spec``'s sources and an object of each source bucket; check each
    change reaches its target within ``within`` seconds (``functions``: who applies them, for the labels)."""
    home = spec.home_where()
    ddb, s3 = make_client("dynamodb", home), make_client("s3", home)
    stamp = f"live-{time.time_ns()}"
    stream_fn, bucket_fn = functions
    for mapping in spec.tables:
        key = _first_key(ddb, mapping.source)
        ddb.update_item(
            TableName=mapping.source,
            Key=key,
            UpdateExpression="SET #m = :m",
            ExpressionAttributeNames={"#m": "marker"},
            ExpressionAttributeValues={":m": {"S": stamp}},
        )

        def item_applied(table: str = mapping.target, key: dict[str, Any] = key) -> bool:
            item = ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item", {})
            return item.get("marker") == {"S": stamp}

        after = _within(within, item_applied)
        run.check(
            f"deployed {stream_fn} applied a live change to {mapping.target} ({mapping.protocol})",
            after is not None,
            f"{_key_text(key)}: " + (f"applied after {after:.1f} s" if after is not None else f"not in {within:.0f} s"),
        )
    for bucket in spec.buckets:
        name = s3.list_objects_v2(Bucket=bucket.source, Prefix=bucket.prefix, MaxKeys=1)["Contents"][0]["Key"]
        s3.put_object(Bucket=bucket.source, Key=name, Body=stamp.encode())

        def object_applied(target: str = bucket.target, key: str = name) -> bool:
            return object_bytes_or_none(s3, target, key) == stamp.encode()

        after = _within(within, object_applied)
        run.check(
            f"deployed {bucket_fn} applied a live change to {bucket.target}",
            after is not None,
            f"{name}: " + (f"overwritten after {after:.1f} s" if after is not None else f"not in {within:.0f} s"),
        )


def _check_lag_samples(run: Rehearsal, ddb: DynamoDBClient, since: float) -> None:
    """The deployed functions recorded the run log's lag samples of what they applied (ferry report's
    lag plot), with the role ferry's IAM gives them: a PutItem of a sample's attributes only."""
    runlog = RunLog(ddb, run.spec.state_table)
    sources = [(TABLE, t.source, STREAM_FUNCTION) for t in run.spec.tables]
    sources += [(BUCKET, b.source, BUCKET_FUNCTION) for b in run.spec.buckets]
    for kind, source, function in sources:
        samples = [s for s in runlog.lag_samples(source, kind) if s.at >= since]
        run.check(
            f"deployed {function} recorded lag samples of {source}",
            bool(samples) and all(s.records > 0 for s in samples),
            f"{len(samples)} sample(s), {sum(s.records for s in samples)} record(s), max lag "
            f"{max((s.max for s in samples), default=0.0):.1f} s",
        )


def _first_key(ddb: DynamoDBClient, table: str) -> dict[str, Any]:
    names = [k["AttributeName"] for k in ddb.describe_table(TableName=table)["Table"]["KeySchema"]]
    (item,) = ddb.scan(TableName=table, Limit=1)["Items"]
    return {name: item[name] for name in names}


def _key_text(key: dict[str, Any]) -> str:
    return ", ".join(f"{name}={next(iter(value.values()))}" for name, value in key.items())


def _within(seconds: float, done: Callable[[], bool], every: float = 0.25) -> float | None:
    """How long until ``done()`` held, or None when it did not within ``seconds``."""
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > seconds:
            return None
        time.sleep(every)
    return time.monotonic() - started


def _check_functions(run: Rehearsal, lam: LambdaClient, iam: IAMClient) -> None:
    roles = set()
    for fn in FUNCTIONS:
        name = function_name(run.stage, fn)
        config = lam.get_function(FunctionName=name)["Configuration"]
        env = config.get("Environment", {}).get("Variables", {})
        run.check(f"function {name}", config["Handler"] == f"app.{fn}", config["Handler"])
        run.check(f"{name} FERRY_SPEC", env.get("FERRY_SPEC") == lambda_spec_json(run.spec), "the spec, compact")
        policies = iam.list_role_policies(RoleName=config["Role"].split("/")[-1])["PolicyNames"]
        roles.add(config["Role"])
        run.check(f"{name} role has its own policy", bool(policies), ", ".join(policies))
    run.check("one role per function", len(roles) == len(FUNCTIONS), ", ".join(sorted(roles)))


def _check_stream_mappings(run: Rehearsal, lam: LambdaClient, ddb: DynamoDBClient, *, released: bool) -> None:
    """An insert-only table's mapping exists from the deployment with the spec's settings; a replay
    table's exists only once its copy is released: at TRIM_HORIZON, with no maximum record age."""
    when = "after release: " if released else ""
    for mapping in run.spec.tables:
        stream_arn = stream_arn_of(ddb, mapping.source)
        found = lam.list_event_source_mappings(EventSourceArn=stream_arn)["EventSourceMappings"]
        if mapping.replay and not released:
            run.check(f"replay {mapping.source}: no stream mapping before the release", found == [], f"{len(found)}")
            continue
        settings = stream_mapping_settings(run.spec, replay=mapping.replay)
        want = {
            "BatchSize": settings.batch_size,
            "MaximumRetryAttempts": settings.maximum_retry_attempts,
            "MaximumRecordAgeInSeconds": settings.maximum_record_age_in_seconds,
            "BisectBatchOnFunctionError": True,
            "StartingPosition": "TRIM_HORIZON",
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "State": "Enabled",
        }
        run.check(f"{when}stream mapping of {mapping.protocol} {mapping.source}", len(found) == 1, f"{len(found)}")
        for m in found:
            got = {k: m.get(k) for k in want}
            run.check(f"  settings of {m.get('UUID')}", got == want, json.dumps(got, sort_keys=True))
            destination = m.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination", "")
            queue = run.spec.replication.on_failure_queue
            run.check("  on-failure destination", destination.endswith(f":{queue}"), destination)


def _check_bucket_events(run: Rehearsal, lam: LambdaClient, sqs: SQSClient, *, released: bool) -> None:
    events = bucket_events_settings(run.spec)
    queue_url = queue_url_or_none(sqs, events.queue_name)
    run.check(f"queue {events.queue_name}", queue_url is not None, queue_url or "not found")
    if queue_url is None:
        return
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    found = lam.list_event_source_mappings(EventSourceArn=attributes["QueueArn"])["EventSourceMappings"]
    if not released:
        redrive = json.loads(attributes.get("RedrivePolicy", "{}"))
        run.check(
            f"queue {events.queue_name} has a DLQ",
            redrive.get("deadLetterTargetArn", "").endswith(events.queue_name + DLQ_SUFFIX)
            and int(redrive.get("maxReceiveCount", 0)) == events.max_receive_count,
            json.dumps(redrive),
        )
        retention = int(attributes.get("MessageRetentionPeriod", 0))
        run.check(
            f"queue {events.queue_name} keeps events 14 days", retention == QUEUE_RETENTION_SECONDS, f"{retention} s"
        )
        run.check(
            f"queue mapping {events.queue_name} → {function_name(run.stage, BUCKET_FUNCTION)}",
            len(found) == 1 and found[0].get("FunctionResponseTypes") == ["ReportBatchItemFailures"],
            json.dumps([m.get("FunctionResponseTypes") for m in found]),
        )
    # held (replay buckets) until the release enables it; an insert-only bucket's runs from the start
    want = "Enabled" if released or not events.hold_until_release else "Disabled"
    states = [m.get("State") for m in found]
    when = "after release" if released else "held" if events.hold_until_release else "deployed"
    run.check(f"  {when}: queue mapping {want}", states == [want], ", ".join(str(s) for s in states))


def _check_copies(run: Rehearsal, ddb: DynamoDBClient, s3: S3Client) -> None:
    """What the copy carried, and the phase its release left the replay table and bucket in."""
    store = StateStore(ddb, run.spec.state_table)
    for mapping in run.spec.tables:
        count = ddb.scan(TableName=mapping.target, Select="COUNT")["Count"]
        run.check(f"copy {mapping.source} → {mapping.target}", count == ITEMS, f"{count} items")
        if mapping.replay:
            phase = store.phase_or_none(mapping.source)
            run.check(f"  {mapping.source} phase {PHASE_REPLAY} (was {PHASE_HOLD})", phase == PHASE_REPLAY, str(phase))
    for bucket in run.spec.buckets:
        listed = s3.list_objects_v2(Bucket=bucket.target, Prefix=bucket.prefix).get("KeyCount", 0)
        run.check(f"copy {bucket.source} → {bucket.target}", listed == ITEMS, f"{listed} objects")
        phase = store.phase_or_none(bucket.source, BUCKET)
        run.check(f"  bucket {bucket.source} phase {PHASE_REPLAY}", phase == PHASE_REPLAY, str(phase))


def _check_glue_jobs(run: Rehearsal, glue: GlueClient, iam: IAMClient) -> None:
    for kind in KINDS:
        name = job_name(run.stage, kind)
        job = glue.get_job(JobName=name)["Job"]
        args = job.get("DefaultArguments", {})
        run.check(
            f"Glue job {name}",
            job.get("GlueVersion", "").startswith("5.")
            and args.get("--extra-py-files", "").endswith("/ferry.zip")
            and args.get("--spec_json") == lambda_spec_json(run.spec),
            f"{job.get('GlueVersion')} {job.get('WorkerType')}×{job.get('NumberOfWorkers')}",
        )
        # the release: the job may create (table) or enable (bucket) its own stage's mappings only
        function = function_name(run.stage, STREAM_FUNCTION if kind == TABLE else BUCKET_FUNCTION)
        creates = [
            s
            for s in _role_statements(iam, job.get("Role", "").split("/")[-1])
            if "lambda:CreateEventSourceMapping" in s["Action"]
        ]
        confined = [
            s["Condition"]["ArnLike"]["lambda:FunctionArn"][0] for s in creates if "ArnLike" in s.get("Condition", {})
        ]
        run.check(
            f"  {name} role creates mappings of {function} only",
            bool(creates)
            and len(confined) == len(creates)
            and all(a.endswith(f":function:{function}") for a in confined),
            ", ".join(confined) or "no statement",
        )


def _role_statements(iam: IAMClient, role: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document: Any = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
        statements += (json.loads(document) if isinstance(document, str) else document)["Statement"]
    return statements
