"""Deployment steps that talk to AWS: prepare the sources, write Terraform's variables, configure
and wire the Chalice quick path. The settings come from ``ferry.deploy``, shared by both paths."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from ferry.aws import (
    create_bucket_if_missing,
    glue_job_or_none,
    head_bucket,
    queue_arn_of,
    queue_url_or_none,
    role_arn_or_create,
)
from ferry.clients import bucket_clients, make_client, table_clients
from ferry.deploy import (
    BUCKET_FUNCTION,
    BUCKET_REVERSE_FUNCTION,
    DIRECTION_FUNCTIONS,
    DLQ_SUFFIX,
    FUNCTIONS,
    STREAM_FUNCTION,
    STREAM_REVERSE_FUNCTION,
    Arns,
    bucket_events_settings,
    bucket_variables,
    function_name,
    lambda_spec_json,
    policy_documents,
    queue_mapping_request,
    reverse_bucket_events_settings,
    reverse_failure_queue_name,
    reverse_stream_mapping_settings,
    stream_mapping_request,
    stream_mapping_settings,
    table_variables,
    terraform_variables,
)
from ferry.errors import SetupError
from ferry.jobs import SCRIPTS, TABLE, default_arguments, job_name
from ferry.operations import account_of
from ferry.spec import WRITE_IMPORT, Spec
from ferry.tables.setup import ensure_failure_queue, inspect_tables
from ferry_cli.artifacts import build_glue_zip


def artifacts_bucket_name(stage: str, account: str) -> str:
    return f"ferry-{stage}-artifacts-{account}"


def prepare_sources(spec: Spec, *, enable_pitr: bool = False) -> list[str]:
    """Only what must change on resources Terraform does not own: a NEW_AND_OLD_IMAGES stream on
    every source table (and, with ``enable_pitr`` and backfill.read: export, point-in-time recovery)
    and EventBridge notifications merged into every source bucket's configuration (kept as it is
    otherwise). Everything is validated before the first write."""
    from ferry.aws import point_in_time_recovery_enabled
    from ferry.buckets.setup import enable_eventbridge, inspect_buckets
    from ferry.spec import READ_EXPORT
    from ferry.tables.setup import enable_point_in_time_recovery, enable_stream

    tables = table_clients(spec)
    buckets = bucket_clients(spec)
    checks = inspect_tables(spec, tables, require_targets=False, require_streams=False)
    inspect_buckets(spec, buckets)
    exports = spec.backfill.read == READ_EXPORT
    if exports and not enable_pitr:
        for i, check in enumerate(checks):
            if not point_in_time_recovery_enabled(tables.source, check.mapping.source):
                raise SetupError(
                    f"backfill.read: export needs point-in-time recovery on tables[{i}].source "
                    f"{check.mapping.source!r}, which is off: add --enable-pitr, or use read: scan"
                )
    done: list[str] = []
    for check in checks:
        if check.stream_needs_enabling:
            done.append(enable_stream(tables.source, check.mapping.source))
        if exports:
            done += enable_point_in_time_recovery(tables.source, check.mapping.source)
    for bucket in spec.buckets:
        done += enable_eventbridge(buckets.source, bucket.source, rule_existed=False)
    return done


def terraform_variables_for(spec: Spec, stage: str) -> dict[str, Any]:
    """Read the sources (and existing targets) and return ``terraform/stages/<stage>.ferry.tfvars.json``'s content."""
    from ferry.buckets.setup import NOTIFICATION_KINDS, inspect_buckets, notification_configuration

    clients = table_clients(spec)
    target_arns = Arns(spec.region, account_of(spec, "target"))
    tables = []
    # The same checks as every other command: the source's NEW_AND_OLD_IMAGES stream, an existing
    # target's key schema. Terraform does not own the source, so its stream must be there already.
    for check in inspect_tables(spec, clients, require_targets=False, require_streams=True):
        mapping, source = check.mapping, check.source.raw
        target = check.target.raw if check.target is not None else None
        ttl = clients.source.describe_time_to_live(TableName=mapping.source).get("TimeToLiveDescription", {})
        ttl_attribute = ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") else None
        tables.append(
            table_variables(
                source,
                target,
                target_name=mapping.target,
                target_arn=target_arns.table(mapping.target),
                ttl_attribute=ttl_attribute,
                protocol=mapping.protocol,
                import_creates_target=spec.backfill.write == WRITE_IMPORT,
            )
        )
    s3 = bucket_clients(spec)
    buckets = []
    for bucket_check in inspect_buckets(spec, s3):
        current = notification_configuration(s3.source, bucket_check.mapping.source)
        m = bucket_check.mapping
        buckets.append(
            bucket_variables(
                m.source,
                m.target,
                m.prefix,
                target_exists=bucket_check.target_exists,
                versioning=bucket_check.source_versioning == "Enabled",
                other_notifications=any(current.get(kind) for kind in NOTIFICATION_KINDS),
            )
        )
    return terraform_variables(spec, stage, tables, buckets, account=account_of(spec), reverse=reverse_begun(spec))


def reverse_begun(spec: Spec) -> bool:
    """Whether `ferry reverse` has recorded its step for some table or bucket (the state table at home; none
    yet, as before the first deployment, means no). From then on every deployment keeps reverse replication."""
    from ferry.aws import describe_table_or_none
    from ferry.twoway import BUCKET, STEP_REVERSE, TABLE, TwoWayStore

    ddb = make_client("dynamodb", spec.home_where())
    if describe_table_or_none(ddb, spec.state_table) is None:
        return False
    store = TwoWayStore(ddb, spec.state_table)
    pairs = [(TABLE, t.source, t.target) for t in spec.tables] + [(BUCKET, b.source, b.target) for b in spec.buckets]
    return any(STEP_REVERSE in store.steps(kind, a, b) for kind, a, b in pairs)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------
# The Chalice quick path


def chalice_config(spec: Spec, stage: str, app_dir: Path, *, account: str) -> list[str]:
    """Write the stage into ``.chalice/config.json`` (FERRY_SPEC, one role per function with
    autogen off) and each function's least-privilege policy file next to it."""
    chalice_dir = app_dir / ".chalice"
    config_path = chalice_dir / "config.json"
    config = json.loads(config_path.read_text())
    policies = policy_documents(
        spec, stage, Arns(spec.region, account), artifacts_bucket=artifacts_bucket_name(stage, account)
    )
    functions: dict[str, Any] = {}
    written = []
    for fn in FUNCTIONS:
        policy_file = f"policy-{stage}-{fn}.json"
        write_json(chalice_dir / policy_file, policies[fn])
        written.append(str(chalice_dir / policy_file))
        functions[fn] = {"autogen_policy": False, "iam_policy_file": policy_file}
    stage_config = config.setdefault("stages", {}).setdefault(stage, {})
    # Lambda refuses an SQS mapping whose queue hides a message for less than the function may run.
    stage_config["lambda_timeout"] = min(int(stage_config.get("lambda_timeout", 90)), spec.s3.visibility_timeout)
    stage_config.setdefault("lambda_memory_size", 512)
    env = stage_config.setdefault("environment_variables", {})
    env.update({"FERRY_SPEC": lambda_spec_json(spec), "POWERTOOLS_SERVICE_NAME": "ferry"})
    env.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")
    stage_config["lambda_functions"] = functions
    write_json(config_path, config)
    written.append(str(config_path))
    return written


def _upsert_mapping(lam: Any, request: dict[str, Any]) -> str:
    """Create the event-source mapping, or bring an existing one to these settings. An update leaves
    ``Enabled`` as it is: a held mapping is enabled by ``ferry release``, never disabled again here."""
    existing = lam.list_event_source_mappings(
        EventSourceArn=request["EventSourceArn"], FunctionName=request["FunctionName"]
    )["EventSourceMappings"]
    if existing:
        update = {k: v for k, v in request.items() if k not in ("EventSourceArn", "StartingPosition", "Enabled")}
        lam.update_event_source_mapping(UUID=existing[0]["UUID"], **update)
        return f"updated event-source mapping {existing[0]['UUID']} → {request['FunctionName']} ({existing[0].get('State')})"
    uuid = lam.create_event_source_mapping(**request)["UUID"]
    state = "enabled" if request.get("Enabled", True) else "disabled until `ferry release`"
    return f"created event-source mapping {uuid}: {request['EventSourceArn']} → {request['FunctionName']} ({state})"


def _glue_role(iam: Any, name: str, policy: dict[str, Any]) -> str:
    """One role per job, named after it."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    arn = role_arn_or_create(iam, name, json.dumps(trust))
    iam.put_role_policy(RoleName=name, PolicyName="ferry-backfill", PolicyDocument=json.dumps(policy))
    return arn


def _upsert_glue_job(glue: Any, name: str, definition: dict[str, Any]) -> str:
    if glue_job_or_none(glue, name) is None:
        glue.create_job(Name=name, **definition)
        return f"created Glue job {name}"
    glue.update_job(JobName=name, JobUpdate=definition)
    return f"updated Glue job {name}"


def wire(spec: Spec, stage: str, *, workers: int = 2, worker_type: str = "G.1X") -> list[str]:
    """What ``chalice deploy`` cannot configure, through the API, with the settings Terraform
    uses: the stream mappings of insert-only tables (partial batch responses, bisect, finite retries
    and record age, TRIM_HORIZON, on-failure queue), the bucket-events queue mapping (disabled while
    the buckets are held), and the two Glue jobs with their scripts, the shared package and a
    least-privilege role. A replay table gets no stream mapping here: its release creates it
    (docs/adr/0002, decision 7), and a rerun never touches the one the release made. Idempotent."""
    home = spec.home_where()
    lam, sqs = make_client("lambda", home), make_client("sqs", home)
    done: list[str] = []
    if spec.tables:
        checks = inspect_tables(spec, table_clients(spec), require_targets=False, require_streams=True)
        _, failure_arn = ensure_failure_queue(sqs, spec.replication.on_failure_queue)
        settings = stream_mapping_settings(spec)
        for check in checks:
            if check.mapping.replay:
                done.append(f"{check.mapping.source}: replay: its stream mapping is created by its release")
                continue
            request = stream_mapping_request(
                settings,
                stream_arn=str(check.source.stream_arn),
                function=function_name(stage, STREAM_FUNCTION),
                on_failure_arn=failure_arn,
            )
            done.append(_upsert_mapping(lam, request))
    if spec.buckets:
        events = bucket_events_settings(spec)
        url = queue_url_or_none(sqs, events.queue_name)
        if url is None:
            raise SetupError(f"s3.events_queue: queue {events.queue_name!r} does not exist; run `ferry init` first")
        arn = queue_arn_of(sqs, url)
        request = queue_mapping_request(
            events,
            queue_arn=arn,
            function=function_name(stage, BUCKET_FUNCTION),
            enabled=not events.hold_until_release,
        )
        done.append(_upsert_mapping(lam, request))
    done += _wire_glue(spec, stage, workers=workers, worker_type=worker_type)
    return done


# ---------------------------------------------------------------------------------------------
# Reverse replication and the switch (docs/adr/0009): `ferry reverse`, `ferry cutover`, `ferry rollback`

DIRECTIONS = tuple(DIRECTION_FUNCTIONS)
ENABLED_STATES = ("Enabled", "Enabling")
DISABLED_STATES = ("Disabled", "Disabling")


def wire_reverse(spec: Spec, stage: str) -> list[str]:
    """Reverse replication's event-source mappings through the API, with the settings Terraform's
    ``reverse = true`` gives them: each new table's stream → ``table_stream_reverse`` (TRIM_HORIZON, the forward
    mappings' safety settings, on-failure queue ``<on_failure_queue>-reverse``) and the reverse events queue
    (``<events_queue>-reverse``, with its dead-letter queue) → ``bucket_events_reverse``, enabled. A missing
    queue is created; an existing one (Terraform's) is used as it is. A reverse function that is not deployed
    is skipped, by name: a Terraform stage gets its reverse functions and their mappings from `make deploy`
    once `ferry reverse` has begun (terraform/README.md). Every new table is checked before the first write.
    Idempotent: a rerun brings the settings up to date and never re-enables a mapping `ferry rollback` disabled."""
    home = spec.home_where()
    lam, sqs = make_client("lambda", home), make_client("sqs", home)
    done: list[str] = []
    stream_fn, bucket_fn = function_name(stage, STREAM_REVERSE_FUNCTION), function_name(stage, BUCKET_REVERSE_FUNCTION)
    if spec.tables and not _deployed(lam, stream_fn):
        done.append(_not_deployed(stream_fn, "new tables' streams"))
    elif spec.tables:
        streams = _new_table_streams(spec)
        failure_name = reverse_failure_queue_name(spec)
        url = queue_url_or_none(sqs, failure_name)
        if url is None:
            url, failure_arn = ensure_failure_queue(sqs, failure_name)
            done.append(f"created queue {failure_name} (the reverse stream mappings' on-failure destination)")
        else:
            failure_arn = queue_arn_of(sqs, url)
        settings = reverse_stream_mapping_settings(spec)
        for stream_arn in streams:
            request = stream_mapping_request(
                settings, stream_arn=stream_arn, function=stream_fn, on_failure_arn=failure_arn
            )
            done.append(_upsert_mapping(lam, request))
    if spec.buckets and not _deployed(lam, bucket_fn):
        done.append(_not_deployed(bucket_fn, "reverse events queue"))
    elif spec.buckets:
        events = reverse_bucket_events_settings(spec)
        url = queue_url_or_none(sqs, events.queue_name)
        if url is None:
            from ferry.buckets.setup import ensure_event_queues

            url, queue_arn, _ = ensure_event_queues(
                sqs, events.queue_name, events.max_receive_count, events.visibility_timeout_seconds
            )
            done.append(
                f"created queue {events.queue_name} and {events.queue_name}{DLQ_SUFFIX} (the new buckets' events)"
            )
        else:
            queue_arn = queue_arn_of(sqs, url)
        done.append(_upsert_mapping(lam, queue_mapping_request(events, queue_arn=queue_arn, function=bucket_fn)))
    return done


def _new_table_streams(spec: Spec) -> list[str]:
    """Each new table's stream ARN; SetupError naming the first table without a NEW_AND_OLD_IMAGES stream."""
    from ferry.aws import STREAM_VIEW, describe_table_or_none

    target = table_clients(spec).target
    arns = []
    for i, mapping in enumerate(spec.tables):
        table = describe_table_or_none(target, mapping.target)
        if table is None:
            raise SetupError(f"tables[{i}].target: table {mapping.target!r} does not exist; run `ferry init` first")
        stream = table.get("StreamSpecification") or {}
        if not stream.get("StreamEnabled") or stream.get("StreamViewType") != STREAM_VIEW:
            raise SetupError(
                f"tables[{i}].target: {mapping.target!r} has no {STREAM_VIEW} stream for reverse replication; "
                "run `ferry reverse` first (it enables the new tables' change capture)"
            )
        arns.append(str(table["LatestStreamArn"]))
    return arns


def _deployed(lam: Any, function: str) -> bool:
    """Whether ``function`` exists (ListFunctions: asking for a missing one would be an error to interpret)."""
    return any(
        f["FunctionName"] == function
        for page in lam.get_paginator("list_functions").paginate()
        for f in page["Functions"]
    )


def _not_deployed(function: str, what: str) -> str:
    return (
        f"{function} is not deployed: the {what} stay unmapped (chalice deploy deploys it; on a Terraform stage "
        "`make deploy` does once `ferry reverse` has begun, and maps it too)"
    )


def _function_mappings(lam: Any, function: str) -> list[dict[str, Any]]:
    """Every event-source mapping of ``function``; [] when it is not deployed."""
    if not _deployed(lam, function):
        return []
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"FunctionName": function}
    while True:
        page = lam.list_event_source_mappings(**kwargs)
        found += [dict(m) for m in page.get("EventSourceMappings", [])]
        if not page.get("NextMarker"):
            return found
        kwargs["Marker"] = page["NextMarker"]


def _direction_functions(spec: Spec, stage: str, direction: str) -> list[str]:
    """The deployed names of ``direction``'s functions the spec has a use for (tables, buckets)."""
    if direction not in DIRECTION_FUNCTIONS:
        raise SetupError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    stream_fn, bucket_fn = DIRECTION_FUNCTIONS[direction]
    used = [(stream_fn, bool(spec.tables)), (bucket_fn, bool(spec.buckets))]
    return [function_name(stage, fn) for fn, wanted in used if wanted]


def set_mappings_enabled(spec: Spec, stage: str, direction: str, enabled: bool) -> list[str]:
    """Enable or disable every event-source mapping of ``direction``'s functions ("forward": ``table_stream``
    and ``bucket_events``, the release-made mappings included; "reverse": the two ``_reverse`` ones). A mapping
    already in that state (or on its way there) is left alone: idempotent. One line per mapping."""
    from ferry.aws import update_event_source_mapping
    from ferry.errors import RetryableError

    lam = make_client("lambda", spec.home_where())
    done: list[str] = []
    verb = "enabled" if enabled else "disabled"
    for function in _direction_functions(spec, stage, direction):
        mappings = _function_mappings(lam, function)
        if not mappings:
            done.append(f"{function}: no event-source mapping")
        for mapping in mappings:
            uuid, source, state = mapping["UUID"], mapping.get("EventSourceArn"), mapping.get("State")
            if state in (ENABLED_STATES if enabled else DISABLED_STATES):
                done.append(f"{verb} already: {source} → {function} ({state})")
                continue
            for attempt in range(30):  # a mapping that is Creating or Updating refuses a change until it is done
                try:
                    update_event_source_mapping(lam, uuid, Enabled=enabled)
                    break
                except RetryableError:
                    if attempt == 29:
                        raise
                    time.sleep(1.0)
            done.append(f"{verb} event-source mapping {uuid}: {source} → {function} (was {state})")
    return done


def mappings_state(spec: Spec, stage: str, direction: str) -> dict[str, str]:
    """Event source ARN → State ("Enabled", "Disabled", "Enabling", …) of every mapping of ``direction``'s functions."""
    lam = make_client("lambda", spec.home_where())
    return {
        str(m["EventSourceArn"]): str(m.get("State"))
        for function in _direction_functions(spec, stage, direction)
        for m in _function_mappings(lam, function)
    }


def _wire_glue(spec: Spec, stage: str, *, workers: int, worker_type: str) -> list[str]:
    from ferry.buckets.setup import PUBLIC_ACCESS_BLOCK

    home = spec.home_where()
    account = account_of(spec)
    bucket = artifacts_bucket_name(stage, account)
    s3 = make_client("s3", home)
    done: list[str] = []
    if not head_bucket(s3, bucket)[0]:
        create_bucket_if_missing(s3, bucket, spec.region)
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
            },
        )
        done.append(f"created artifacts bucket {bucket}")
    scripts = Path(__file__).resolve().parent.parent / "glue_jobs"
    with tempfile.TemporaryDirectory() as tmp:
        archive = build_glue_zip(Path(tmp) / "ferry.zip")
        s3.upload_file(str(archive), bucket, "ferry.zip")
    for script in SCRIPTS.values():
        s3.upload_file(str(scripts / script), bucket, f"scripts/{script}")
    done.append(f"uploaded ferry.zip and {', '.join(SCRIPTS.values())} to s3://{bucket}")
    policies = policy_documents(spec, stage, Arns(spec.region, account), artifacts_bucket=bucket)
    iam, glue = make_client("iam", home), make_client("glue", home)
    for kind, script in SCRIPTS.items():
        runs = len(spec.tables) if kind == TABLE else len(spec.buckets)
        if not runs:
            continue
        definition = {
            "Role": _glue_role(iam, job_name(stage, kind), policies[f"{kind}_backfill"]),
            "Command": {"Name": "glueetl", "ScriptLocation": f"s3://{bucket}/scripts/{script}", "PythonVersion": "3"},
            "DefaultArguments": default_arguments(spec, bucket),
            "GlueVersion": "5.0",
            "WorkerType": worker_type,
            "NumberOfWorkers": workers,
            "ExecutionProperty": {"MaxConcurrentRuns": runs},  # one run per table or bucket at once
            "MaxRetries": 0,  # a rerun resumes from checkpoints; an automatic one would hide the failure
        }
        done.append(_upsert_glue_job(glue, job_name(stage, kind), definition))
    return done


def identities(spec: Spec) -> dict[str, str]:
    """The caller ARN on each side; the first call without credentials raises NoCredentialsError."""
    sides = {"home": spec.home_where(), "source": spec.source_where(), "target": spec.target_where()}
    return {side: str(make_client("sts", where).get_caller_identity()["Arn"]) for side, where in sides.items()}
