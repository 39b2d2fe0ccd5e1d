"""``ferry init`` for buckets, and the read-only checks every other bucket command runs first.

Everything is inspected before anything is written: a missing source bucket (or a target name
owned by someone else) stops the command with a SetupError naming ``buckets[i].…`` and no write
made. Then, per mapping and only where something is missing:

* the target bucket is created, with the source's versioning (Enabled → Enabled) and default
  encryption (the source's configuration; SSE-S3 when it has none), and public access blocked;
* live changes are captured with Amazon EventBridge: EventBridge is switched on for the source
  bucket by *merging* it into the bucket's notification configuration (a bucket has exactly one,
  and a put replaces it whole, so every existing Queue/Topic/Lambda configuration is kept), a rule
  ``ferry-<source>`` sends the bucket's object events to the ferry queue, and the queue policy lets
  that one rule send.

Every step reads before it writes, so a second ``init`` changes nothing and returns ``[]``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote, quote_plus

from ferry.aws import (
    bucket_encryption_or_none,
    call_with_retries,
    create_bucket_if_missing,
    describe_rule_or_none,
    ensure_queue,
    error_name,
    head_bucket,
    public_access_block_or_none,
    queue_arn_of,
)
from ferry.clients import BucketClients
from ferry.deploy import DEAD_LETTER_QUEUE_ATTRIBUTES, DLQ_SUFFIX, QUEUE_RETENTION_SECONDS
from ferry.errors import SetupError
from ferry.spec import BucketMapping, Spec
from ferry.tables.protocol import PHASE_HOLD
from ferry.tables.state import BUCKET, Capture, StateStore

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import (
        NotificationConfigurationTypeDef,
        PublicAccessBlockConfigurationTypeDef,
        ServerSideEncryptionConfigurationTypeDef,
    )
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)
T = TypeVar("T")

# The object events ferry replicates (EventBridge detail-types of S3 events).
EVENT_DETAIL_TYPES = ("Object Created", "Object Deleted", "Object Tags Added", "Object Tags Deleted")
# The notification configuration kinds a bucket may already carry; all of them are kept.
NOTIFICATION_KINDS = ("TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations")
RULE_TARGET_ID = "ferry-events-queue"
DEFAULT_ENCRYPTION: dict[str, Any] = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
PUBLIC_ACCESS_BLOCK: PublicAccessBlockConfigurationTypeDef = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
_RULE_NAME_LIMIT = 64


@dataclass(frozen=True)
class BucketCheck:
    mapping: BucketMapping
    source_region: str | None  # as HeadBucket reports it
    source_versioning: str | None  # "Enabled" | "Suspended" | None (never enabled)
    source_encryption: dict[str, Any] | None = field(compare=False)  # ServerSideEncryptionConfiguration
    target_exists: bool
    target_region: str | None = None


def event_rule_name(source: str) -> str:
    """``ferry-<source>``; shortened with a hash when that exceeds EventBridge's 64 characters."""
    name = f"ferry-{source}"
    if len(name) <= _RULE_NAME_LIMIT:
        return name
    digest = hashlib.sha256(source.encode()).hexdigest()[:8]
    return f"ferry-{source[: _RULE_NAME_LIMIT - len('ferry-') - 9]}-{digest}"


def event_pattern(mapping: BucketMapping) -> dict[str, Any]:
    """The EventBridge pattern for the source bucket's object events (under the prefix, if any)."""
    detail: dict[str, Any] = {"bucket": {"name": [mapping.source]}}
    if mapping.prefix:
        # Whether a key in an EventBridge event is URL-encoded is not something to bet data on: a
        # prefix that encoding would change matches in every form (a wider match only costs a
        # few extra events; the handler decides from the source's current state anyway).
        forms = dict.fromkeys([mapping.prefix, quote(mapping.prefix, safe="/"), quote_plus(mapping.prefix)])
        detail["object"] = {"key": [{"prefix": p} for p in forms]}
    return {"source": ["aws.s3"], "detail-type": list(EVENT_DETAIL_TYPES), "detail": detail}


def queue_policy_statement(queue_arn: str, rule_arn: str) -> dict[str, Any]:
    """Lets exactly one EventBridge rule send to the queue."""
    return {
        "Sid": "ferry" + hashlib.sha256(rule_arn.encode()).hexdigest()[:20],
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
    }


# --- reads -----------------------------------------------------------------------------------


def _call(fn: Callable[[], T], what: str) -> T:
    return call_with_retries(fn, what, attempts=5, base_delay=0.2)


def _head_bucket(s3: S3Client, bucket: str, field_name: str) -> tuple[bool, str | None]:
    """(exists, region). A bucket name that answers 403 exists but is not ours: a SetupError naming the field."""
    return _call(lambda: head_bucket(s3, bucket, field=field_name), f"HeadBucket {bucket}")


def _versioning(s3: S3Client, bucket: str) -> str | None:
    status = _call(lambda: s3.get_bucket_versioning(Bucket=bucket), f"GetBucketVersioning {bucket}").get("Status")
    return str(status) if status else None


def _encryption(s3: S3Client, bucket: str) -> dict[str, Any] | None:
    return _call(lambda: bucket_encryption_or_none(s3, bucket), f"GetBucketEncryption {bucket}")


def notification_configuration(s3: S3Client, bucket: str) -> dict[str, Any]:
    response = _call(
        lambda: s3.get_bucket_notification_configuration(Bucket=bucket),
        f"GetBucketNotificationConfiguration {bucket}",
    )
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def inspect_buckets(spec: Spec, s3: S3Client | BucketClients, *, require_targets: bool = False) -> list[BucketCheck]:
    """Read-only validation of every bucket mapping. Raises SetupError naming ``buckets[i].…``.
    ``s3``: BucketClients, or one client for both sides. ``require_targets``: a missing target
    bucket is an error too (as :func:`ferry.tables.setup.inspect_tables` has it), saying to run ``ferry init``."""
    clients = BucketClients.of(s3)
    checks: list[BucketCheck] = []
    for i, mapping in enumerate(spec.buckets):
        exists, source_region = _head_bucket(clients.source, mapping.source, f"buckets[{i}].source")
        if not exists:
            raise SetupError(
                f"buckets[{i}].source: bucket {mapping.source!r} does not exist (or is in no region these "
                "credentials can see); fix the spec"
            )
        target_exists, target_region = _head_bucket(clients.target, mapping.target, f"buckets[{i}].target")
        if not target_exists and require_targets:
            raise SetupError(
                f"buckets[{i}].target: bucket {mapping.target!r} does not exist; run `ferry init` to create it"
            )
        checks.append(
            BucketCheck(
                mapping=mapping,
                source_region=source_region,
                source_versioning=_versioning(clients.source, mapping.source),
                source_encryption=_encryption(clients.source, mapping.source),
                target_exists=target_exists,
                target_region=target_region,
            )
        )
    return checks


# --- target bucket ---------------------------------------------------------------------------


def _normalized_rules(config: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Encryption rules in a comparable form (BucketKeyEnabled defaults to False)."""
    rules = []
    for rule in (config or {}).get("Rules", []):
        default = dict(rule.get("ApplyServerSideEncryptionByDefault", {}))
        rules.append({"default": default, "bucket_key": bool(rule.get("BucketKeyEnabled", False))})
    return rules


def _wanted_encryption(check: BucketCheck) -> dict[str, Any]:
    config = check.source_encryption or DEFAULT_ENCRYPTION
    rules = []
    for rule in config.get("Rules", []):
        kept: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": dict(rule["ApplyServerSideEncryptionByDefault"])}
        if "BucketKeyEnabled" in rule:
            kept["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
        rules.append(kept)
    return {"Rules": rules or DEFAULT_ENCRYPTION["Rules"]}


def _encryption_text(config: dict[str, Any]) -> str:
    default = config["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    key = default.get("KMSMasterKeyID")
    return f"{default['SSEAlgorithm']}" + (f" with key {key}" if key else "")


def _prepare_target(spec: Spec, s3: S3Client, check: BucketCheck) -> list[str]:
    """``s3``: the target side's client (the source was read in ``check``)."""
    m = check.mapping
    done: list[str] = []
    if not check.target_exists:
        try:
            created = create_bucket_if_missing(s3, m.target, spec.region)  # False: a concurrent init made it
        except Exception as exc:
            raise SetupError(f"cannot create target bucket {m.target!r}: {error_name(exc)}") from exc
        if created:
            done.append(f"created target bucket {m.target} in {spec.region}")
        _call(lambda: s3.get_waiter("bucket_exists").wait(Bucket=m.target), f"wait for {m.target}")

    if check.source_versioning == "Enabled" and _versioning(s3, m.target) != "Enabled":
        s3.put_bucket_versioning(Bucket=m.target, VersioningConfiguration={"Status": "Enabled"})
        done.append(f"enabled versioning on {m.target} (as on {m.source})")

    wanted = _wanted_encryption(check)
    if _normalized_rules(_encryption(s3, m.target)) != _normalized_rules(wanted):
        s3.put_bucket_encryption(
            Bucket=m.target, ServerSideEncryptionConfiguration=cast("ServerSideEncryptionConfigurationTypeDef", wanted)
        )
        origin = f"as on {m.source}" if check.source_encryption else f"{m.source} has none: the default"
        done.append(f"set default encryption of {m.target} to {_encryption_text(wanted)} ({origin})")

    current = public_access_block_or_none(s3, m.target) or {}
    if any(not current.get(name) for name in PUBLIC_ACCESS_BLOCK):
        s3.put_public_access_block(Bucket=m.target, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
        done.append(f"blocked all public access to {m.target}")
    return done


# --- event capture -----------------------------------------------------------------------------


def _describe_rule(events: EventBridgeClient, name: str) -> dict[str, Any] | None:
    return _call(lambda: describe_rule_or_none(events, name), f"DescribeRule {name}")


def enable_eventbridge(s3: S3Client, source: str, *, rule_existed: bool) -> list[str]:
    """Merge ``EventBridgeConfiguration`` into the source's notification configuration, keeping
    every existing Queue/Topic/Lambda configuration exactly as it is."""
    current = notification_configuration(s3, source)
    if "EventBridgeConfiguration" in current:
        return []
    merged: dict[str, Any] = {kind: current[kind] for kind in NOTIFICATION_KINDS if current.get(kind)}
    merged["EventBridgeConfiguration"] = {}
    try:
        s3.put_bucket_notification_configuration(
            Bucket=source, NotificationConfiguration=cast("NotificationConfigurationTypeDef", merged)
        )
    except Exception as exc:
        raise SetupError(
            f"cannot enable EventBridge on bucket {source!r}: {error_name(exc)} "
            "(S3 validates every destination of the bucket's notification configuration on each write; "
            "fix or remove a broken destination and run `ferry init` again)"
        ) from exc
    kept = sum(len(merged[kind]) for kind in NOTIFICATION_KINDS if kind in merged)
    if rule_existed:
        # ferry turns EventBridge on before it creates the rule, so this bucket had it already: the
        # configuration read did not show it (moto never echoes it). The merged put is harmless.
        log.info("EventBridge configuration of %s not visible on read; put again (merged, %d kept)", source, kept)
        return []
    return [f"enabled EventBridge notifications on {source} (kept {kept} existing notification configurations)"]


def _ensure_rule(events: EventBridgeClient, mapping: BucketMapping, queue_arn: str) -> tuple[str, list[str]]:
    name = event_rule_name(mapping.source)
    pattern = event_pattern(mapping)
    existing = _describe_rule(events, name)
    done: list[str] = []
    if (
        existing is None
        or json.loads(existing.get("EventPattern") or "{}") != pattern
        or existing.get("State") != "ENABLED"
    ):
        response = events.put_rule(
            Name=name,
            EventPattern=json.dumps(pattern),
            State="ENABLED",
            Description=f"ferry: object events of s3://{mapping.source} for {mapping.target}",
        )
        rule_arn = str(response["RuleArn"])
        done.append(f"{'created' if existing is None else 'updated'} EventBridge rule {name}")
    else:
        rule_arn = str(existing["Arn"])
    targets = _call(lambda: events.list_targets_by_rule(Rule=name), f"ListTargetsByRule {name}").get("Targets", [])
    if not any(t.get("Id") == RULE_TARGET_ID and t.get("Arn") == queue_arn for t in targets):
        put = events.put_targets(Rule=name, Targets=[{"Id": RULE_TARGET_ID, "Arn": queue_arn}])
        if put.get("FailedEntryCount"):
            raise SetupError(f"cannot point rule {name} at {queue_arn}: {put.get('FailedEntries')}")
        done.append(f"rule {name} sends to {queue_arn}")
    return rule_arn, done


def _allow_rule_to_send(sqs: SQSClient, queue_url: str, queue_arn: str, rule_arn: str) -> list[str]:
    """Add (or fix) this rule's statement in the queue policy; every other statement is kept."""
    attributes = _call(
        lambda: sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"]), "GetQueueAttributes"
    ).get("Attributes", {})
    policy: dict[str, Any] = json.loads(attributes["Policy"]) if attributes.get("Policy") else {}
    policy.setdefault("Version", "2012-10-17")
    raw = policy.get("Statement", [])
    statements: list[dict[str, Any]] = [raw] if isinstance(raw, dict) else list(raw)
    wanted = queue_policy_statement(queue_arn, rule_arn)
    if wanted in statements:
        return []
    policy["Statement"] = [s for s in statements if s.get("Sid") != wanted["Sid"]] + [wanted]
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    return [f"queue policy of {queue_arn} allows rule {rule_arn.rsplit('/', 1)[-1]} to send"]


def _check_queue(sqs: SQSClient, queue_url: str, queue_arn: str) -> None:
    try:
        attributes = _call(
            lambda: sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"]), "GetQueueAttributes"
        )["Attributes"]
    except Exception as exc:
        raise SetupError(f"s3.events_queue: queue {queue_url} is not readable: {error_name(exc)}") from exc
    if attributes.get("QueueArn") != queue_arn:
        raise SetupError(f"s3.events_queue: {queue_url} is {attributes.get('QueueArn')}, not {queue_arn}")


def ensure_event_queues(
    sqs: SQSClient, name: str, max_receive_count: int, visibility_timeout: int
) -> tuple[str, str, str]:
    """The bucket-events queue ``name`` and its dead-letter queue ``<name>-dlq``, created or
    brought up to date (idempotent): SSE-SQS on both, the DLQ keeps messages 14 days, the queue
    sends a message to it after ``max_receive_count`` receives. Returns (queue_url, queue_arn, dlq_url).

    Sending to the queue from EventBridge also needs a queue policy for that rule:
    :func:`init_buckets` adds it."""
    if max_receive_count < 1:
        raise ValueError(f"max_receive_count must be at least 1, got {max_receive_count}")
    if len(name) + len(DLQ_SUFFIX) > 80:
        raise ValueError(f"queue name {name!r} is too long for a '{DLQ_SUFFIX}' companion (80 characters at most)")
    dlq_url = ensure_queue(sqs, name + DLQ_SUFFIX, DEAD_LETTER_QUEUE_ATTRIBUTES)
    redrive = json.dumps({"deadLetterTargetArn": queue_arn_of(sqs, dlq_url), "maxReceiveCount": max_receive_count})
    attributes = {
        "SqsManagedSseEnabled": "true",
        "VisibilityTimeout": str(visibility_timeout),
        "RedrivePolicy": redrive,
        # SQS's longest: a replay copy holds the bucket's events here until it is released
        "MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS),
    }
    queue_url = ensure_queue(sqs, name, attributes)
    return queue_url, queue_arn_of(sqs, queue_url), dlq_url


_ARN = re.compile(r"arn:[^:]+:sqs:[^:]+:\d*:.+")


def hold_bucket_events(spec: Spec, store: StateStore, *, queue_arn: str, now: float | None = None) -> list[str]:
    """Record when capture began for every bucket (once), and hold a replay bucket's events in the queue
    until its copy is released (phase ``hold``). Run after EventBridge and the rule are in place."""
    at = time.time() if now is None else now
    done: list[str] = []
    for bucket in spec.buckets:
        capture = store.load_capture(bucket.source, BUCKET)
        if capture is None or capture.where != queue_arn:
            store.save_capture(bucket.source, Capture(at, queue_arn), BUCKET)
            done.append(f"bucket {bucket.source}: capture began (events to {queue_arn.rsplit(':', 1)[-1]})")
        if bucket.replay and not store.has_phase(bucket.source, BUCKET):
            store.set_phase(bucket.source, PHASE_HOLD, BUCKET)
            done.append(f"bucket {bucket.source}: phase hold (events wait in the queue until the copy is released)")
    return done


def init_buckets(
    spec: Spec,
    s3: S3Client | BucketClients,
    sqs: SQSClient,
    events: EventBridgeClient,
    *,
    queue_url: str,
    queue_arn: str,
) -> list[str]:
    """Create and configure what is missing for every bucket mapping. One line per action taken.

    Every mapping (and the queue) is validated before the first write. ``s3``: BucketClients
    (targets prepared on the target side, EventBridge switched on for the source on the source
    side), or one client for both; ``sqs`` and ``events`` are ferry's home account's.
    """
    if not _ARN.fullmatch(queue_arn):
        raise SetupError(f"s3.events_queue: {queue_arn!r} is not an SQS queue ARN")
    clients = BucketClients.of(s3)
    checks = inspect_buckets(spec, clients)
    if checks:
        _check_queue(sqs, queue_url, queue_arn)
    done: list[str] = []
    for check in checks:
        m = check.mapping
        done += _prepare_target(spec, clients.target, check)
        rule_existed = _describe_rule(events, event_rule_name(m.source)) is not None
        done += enable_eventbridge(clients.source, m.source, rule_existed=rule_existed)
        rule_arn, rule_done = _ensure_rule(events, m, queue_arn)
        done += rule_done
        done += _allow_rule_to_send(sqs, queue_url, queue_arn, rule_arn)
    for line in done:
        log.info("init: %s", line)
    return done
