"""Reading terraform/ for the static checks, and the invariants as plain functions.

Every invariant takes parsed HCL (python-hcl2 8.x, plain dicts) and, where comments matter, the
source text, and returns a list of problems that name the file and the resource. The tests run
them on the real tree and on small hand-written bad snippets (negative controls): a check that
cannot fail is worthless.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)

# Queues that are dead-letter destinations keep messages for the SQS maximum.
DEAD_LETTER_RETENTION = 1209600
# An IAM action without wildcards: service prefix, colon, action name.
ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")
# A `count` that only switches an optional part on or off.
TOGGLE = re.compile(r"^\$\{.+\?\s*1\s*:\s*0\}$", re.S)


@dataclass(frozen=True)
class TfFile:
    name: str  # path relative to the repository, or "<snippet>"
    text: str
    doc: dict[str, Any]


def parse(text: str, name: str = "<snippet>") -> TfFile:
    return TfFile(name, text, hcl2.loads(text, serialization_options=OPTIONS))


def load(path: Path, root: Path) -> TfFile:
    return parse(path.read_text(encoding="utf-8"), str(path.relative_to(root)))


# --- walking the parsed documents ---------------------------------------------------------------


def blocks(f: TfFile, kind: str, type_: str | None = None) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every `resource` or `data` block, optionally of one type."""
    for entry in f.doc.get(kind, []):
        for block_type, named in entry.items():
            if type_ is not None and block_type != type_:
                continue
            for name, body in named.items():
                yield block_type, name, body


def named(f: TfFile, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, body) of every `variable`, `output` or `module` block."""
    for entry in f.doc.get(kind, []):
        yield from entry.items()


def first(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The first nested block called ``key`` (blocks parse as lists of dicts)."""
    value = body.get(key)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    if isinstance(value, dict):
        return value
    return None


def statements(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Static `statement` blocks and the `content` of every `dynamic "statement"`."""
    out = list(body.get("statement", []))
    for dynamic in body.get("dynamic", []):
        if "statement" in dynamic:
            out.extend(dynamic["statement"].get("content", []))
    return out


def refers_to(value: Any, address: str) -> bool:
    """Whether an expression (or anything nested in it) references ``address`` (aws_x.name)."""
    text = repr(value)
    return f"{address}." in text or f"{address}[" in text


def is_true(value: Any) -> bool:
    return value is True or value == "true" or value == "${true}"


# --- source-text scanning (comments are not in the parsed documents) ------------------------------


def _skip_string(text: str, i: int) -> int:
    """``i`` is an opening quote; returns the index after the closing one (interpolations nest)."""
    i += 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i + 1
        if text.startswith(("${", "%{"), i):
            i = matching_brace(text, i + 1) + 1
            continue
        i += 1
    raise ValueError("unterminated string")


def matching_brace(text: str, open_at: int) -> int:
    """Index of the brace closing the one at ``open_at``, skipping strings and comments."""
    depth = 0
    i = open_at
    while i < len(text):
        c = text[i]
        if c == '"':
            i = _skip_string(text, i)
            continue
        if c == "#" or text.startswith("//", i):
            newline = text.find("\n", i)
            i = len(text) if newline == -1 else newline
            continue
        if text.startswith("/*", i):
            i = text.index("*/", i) + 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError("unbalanced braces")


_POLICY_HEADER = re.compile(r'^data\s+"aws_iam_policy_document"\s+"([^"]+)"\s*\{', re.M)
_STATEMENT_HEADER = re.compile(r'^[ \t]*(?:statement|dynamic\s+"statement")\s*\{', re.M)
_STAR_RESOURCES = re.compile(r'^\s*resources\s*=\s*\[\s*"\*"\s*,?\s*\]', re.M)


def star_statements(text: str) -> dict[str, list[tuple[int, bool]]]:
    """Per policy document: (line, has a comment right above) of each statement whose resources
    are exactly ["*"], read from the source text."""
    out: dict[str, list[tuple[int, bool]]] = {}
    lines = text.splitlines()
    for header in _POLICY_HEADER.finditer(text):
        body_start = header.end() - 1
        body_end = matching_brace(text, body_start)
        found: list[tuple[int, bool]] = []
        for statement in _STATEMENT_HEADER.finditer(text, body_start, body_end):
            open_at = text.index("{", statement.start())
            block = text[open_at : matching_brace(text, open_at) + 1]
            if not _STAR_RESOURCES.search(block):
                continue
            line = text.count("\n", 0, statement.start())  # 0-based
            above = lines[line - 1].strip() if line > 0 else ""
            found.append((line + 1, above.startswith(("#", "//"))))
        out[header.group(1)] = found
    return out


# --- the invariants ------------------------------------------------------------------------------


def layout_problems(modules_dir: Path) -> list[str]:
    wanted = ("main.tf", "variables.tf", "outputs.tf", "versions.tf")
    problems = []
    for module in sorted(p for p in modules_dir.iterdir() if p.is_dir()):
        problems += [f"{module.name}: missing {name}" for name in wanted if not (module / name).is_file()]
    return problems


def variable_problems(f: TfFile) -> list[str]:
    problems = []
    for name, body in named(f, "variable"):
        for key in ("type", "description"):
            if not body.get(key):
                problems.append(f"{f.name}: variable {name!r} has no {key}")
    return problems


def output_problems(f: TfFile) -> list[str]:
    return [
        f"{f.name}: output {name!r} has no description"
        for name, body in named(f, "output")
        if not body.get("description")
    ]


def provider_problems(f: TfFile) -> list[str]:
    return [f"{f.name}: provider {name!r} configured inside a module" for name, _ in named(f, "provider")]


def count_problems(f: TfFile) -> list[str]:
    """`count` only as an on/off switch (`cond ? 1 : 0`); collections use for_each keyed by name."""
    problems = []
    for kind in ("resource", "data"):
        for type_, name, body in blocks(f, kind):
            if "count" in body and not TOGGLE.match(str(body["count"])):
                problems.append(f"{f.name}: {type_}.{name} count = {body['count']} (use for_each keyed by name)")
    for name, body in named(f, "module"):
        if "count" in body and not TOGGLE.match(str(body["count"])):
            problems.append(f"{f.name}: module.{name} count = {body['count']} (use for_each keyed by name)")
    return problems


def _event_source_kind(body: dict[str, Any]) -> str | None:
    source = str(body.get("event_source_arn", "")).lower()
    if "stream" in source or "starting_position" in body:
        return "stream"
    if "sqs" in source or "queue" in source:
        return "sqs"
    return None


def event_source_mapping_problems(f: TfFile) -> list[str]:
    problems = []
    for _, name, body in blocks(f, "resource", "aws_lambda_event_source_mapping"):
        where = f"{f.name}: aws_lambda_event_source_mapping.{name}"
        kind = _event_source_kind(body)
        if kind is None:
            problems.append(f"{where}: cannot tell whether {body.get('event_source_arn')} is a stream or a queue")
            continue
        if "ReportBatchItemFailures" not in (body.get("function_response_types") or []):
            problems.append(f"{where}: function_response_types must contain ReportBatchItemFailures")
        if not body.get("depends_on"):
            problems.append(f"{where}: must depend_on the function role's policy (it polls as soon as it exists)")
        if kind != "stream":
            continue
        for key in (
            "starting_position",
            "bisect_batch_on_function_error",
            "maximum_retry_attempts",
            "maximum_record_age_in_seconds",
        ):
            if key not in body:
                problems.append(f"{where}: stream mapping without {key}")
        if body.get("bisect_batch_on_function_error") in (False, "false", "${false}"):
            problems.append(f"{where}: bisect_batch_on_function_error is false")
        for key in ("maximum_retry_attempts", "maximum_record_age_in_seconds"):
            if body.get(key) in (-1, "-1", "${-1}"):
                problems.append(f"{where}: {key} = -1 (infinite): a poison record would block its shard")
        on_failure = first(first(body, "destination_config") or {}, "on_failure")
        if not on_failure or not on_failure.get("destination_arn"):
            problems.append(f"{where}: stream mapping without destination_config.on_failure.destination_arn")
    return problems


def queue_problems(files: list[TfFile]) -> list[str]:
    """Within one module: every queue has a redrive policy or is itself a dead-letter destination
    (referenced by another queue's redrive policy, a mapping's on-failure destination or an
    EventBridge target's dead-letter config); those keep messages 14 days."""
    dead_letter_refs: list[Any] = []
    queues: list[tuple[TfFile, str, dict[str, Any]]] = []
    for f in files:
        for _, name, body in blocks(f, "resource", "aws_sqs_queue"):
            queues.append((f, name, body))
            if "redrive_policy" in body:
                dead_letter_refs.append(body["redrive_policy"])
        for _, _, body in blocks(f, "resource", "aws_lambda_event_source_mapping"):
            dead_letter_refs.append(
                (first(first(body, "destination_config") or {}, "on_failure") or {}).get("destination_arn")
            )
        for _, _, body in blocks(f, "resource", "aws_cloudwatch_event_target"):
            dead_letter_refs.append((first(body, "dead_letter_config") or {}).get("arn"))
    problems = []
    for f, name, body in queues:
        is_dead_letter = any(refers_to(ref, f"aws_sqs_queue.{name}") for ref in dead_letter_refs)
        if not is_dead_letter and "redrive_policy" not in body:
            problems.append(f"{f.name}: aws_sqs_queue.{name} has no redrive_policy and is no dead-letter destination")
        if is_dead_letter and body.get("message_retention_seconds") not in (
            DEAD_LETTER_RETENTION,
            str(DEAD_LETTER_RETENTION),
        ):
            problems.append(
                f"{f.name}: aws_sqs_queue.{name} is a dead-letter destination: message_retention_seconds must be {DEAD_LETTER_RETENTION}"
            )
    return problems


def policy_problems(f: TfFile) -> list[str]:
    """No wildcard in any action of an Allow (a Deny may use one: it only takes rights away);
    actions are literal lists; a statement on resources ["*"] has a comment right above it."""
    problems = []
    star_lines = star_statements(f.text)
    for _, name, body in blocks(f, "data", "aws_iam_policy_document"):
        where = f"{f.name}: aws_iam_policy_document.{name}"
        stars = 0
        for statement in statements(body):
            label = f"{where} statement {statement.get('sid', '(no sid)')}"
            effect = statement.get("effect", "Allow")
            if "not_actions" in statement and effect != "Deny":
                problems.append(f"{label}: not_actions in an Allow grants everything else")
            actions = statement.get("actions")
            if not isinstance(actions, list) or not actions:
                problems.append(f"{label}: actions must be a literal, non-empty list (got {actions!r})")
                actions = []
            for action in actions:
                if effect == "Deny" and isinstance(action, str) and "*" in action:
                    continue
                if not isinstance(action, str) or not ACTION.match(action):
                    problems.append(f"{label}: action {action!r} is not one named API action (no wildcards)")
            if statement.get("resources") == ["*"]:
                stars += 1
        found = star_lines.get(name, [])
        if len(found) != stars:
            problems.append(f'{where}: {stars} statement(s) on resources ["*"] parsed, {len(found)} found in the text')
        problems += [
            f'{where}: the statement at line {line} on resources ["*"] needs a comment right above it saying why'
            for line, commented in found
            if not commented
        ]
    return problems


def _bucket_children(files: list[TfFile], type_: str, bucket: str) -> list[dict[str, Any]]:
    return [
        body
        for f in files
        for _, _, body in blocks(f, "resource", type_)
        if refers_to(body.get("bucket"), f"aws_s3_bucket.{bucket}")
    ]


def encryption_problems(files: list[TfFile]) -> list[str]:
    """Within one module: tables, queues, buckets and log groups encrypted; tables with PITR;
    buckets with public access blocked, owner-enforced, a multipart-abort rule and a policy."""
    problems = []
    for f in files:
        for _, name, body in blocks(f, "resource", "aws_dynamodb_table"):
            sse = first(body, "server_side_encryption") or {}
            if not is_true(sse.get("enabled")) or not sse.get("kms_key_arn"):
                problems.append(
                    f"{f.name}: aws_dynamodb_table.{name} without server_side_encryption (enabled, kms_key_arn)"
                )
            if not is_true((first(body, "point_in_time_recovery") or {}).get("enabled")):
                problems.append(f"{f.name}: aws_dynamodb_table.{name} without point_in_time_recovery")
        for _, name, body in blocks(f, "resource", "aws_sqs_queue"):
            if not body.get("kms_master_key_id") and not is_true(body.get("sqs_managed_sse_enabled")):
                problems.append(f"{f.name}: aws_sqs_queue.{name} without kms_master_key_id or sqs_managed_sse_enabled")
        for _, name, body in blocks(f, "resource", "aws_cloudwatch_log_group"):
            for key in ("kms_key_id", "retention_in_days"):
                if not body.get(key):
                    problems.append(f"{f.name}: aws_cloudwatch_log_group.{name} without {key}")
        for _, name, _ in blocks(f, "resource", "aws_s3_bucket"):
            where = f"{f.name}: aws_s3_bucket.{name}"
            encryption = _bucket_children(files, "aws_s3_bucket_server_side_encryption_configuration", name)
            if not any(
                (first(first(e, "rule") or {}, "apply_server_side_encryption_by_default") or {}).get("sse_algorithm")
                == "aws:kms"
                for e in encryption
            ):
                problems.append(f"{where} has no aws_s3_bucket_server_side_encryption_configuration with aws:kms")
            blocks_public = _bucket_children(files, "aws_s3_bucket_public_access_block", name)
            flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
            if not any(all(is_true(b.get(flag)) for flag in flags) for b in blocks_public):
                problems.append(f"{where} has no aws_s3_bucket_public_access_block with all four flags true")
            lifecycles = _bucket_children(files, "aws_s3_bucket_lifecycle_configuration", name)
            if not any(
                first(rule, "abort_incomplete_multipart_upload") for c in lifecycles for rule in c.get("rule", [])
            ):
                problems.append(f"{where} has no lifecycle rule aborting incomplete multipart uploads")
            owners = _bucket_children(files, "aws_s3_bucket_ownership_controls", name)
            if not any((first(o, "rule") or {}).get("object_ownership") == "BucketOwnerEnforced" for o in owners):
                problems.append(f"{where} has no aws_s3_bucket_ownership_controls BucketOwnerEnforced")
            if not _bucket_children(files, "aws_s3_bucket_policy", name):
                problems.append(f"{where} has no aws_s3_bucket_policy (TLS only)")
    return problems


def lambda_problems(f: TfFile) -> list[str]:
    problems = []
    for _, name, body in blocks(f, "resource", "aws_lambda_function"):
        where = f"{f.name}: aws_lambda_function.{name}"
        if (first(body, "tracing_config") or {}).get("mode") != "Active":
            problems.append(f"{where}: tracing_config.mode must be Active")
        for key in ("kms_key_arn", "reserved_concurrent_executions", "filename"):
            if not body.get(key):
                problems.append(f"{where}: no {key}")
        if "filebase64sha256(" not in str(body.get("source_code_hash", "")):
            problems.append(f"{where}: source_code_hash must be filebase64sha256 of the package")
        variables = (first(body, "environment") or {}).get("variables") or {}
        for key in ("FERRY_SPEC", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL"):
            if key not in variables:
                problems.append(f"{where}: environment without {key}")
    return problems


# --- one root, a stage = <stage>.tfvars + <stage>.tfbackend ---------------------------------------

ROOT_FILES = ("main.tf", "outputs.tf", "variables.tf", "versions.tf")
STAGE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")  # as modules/ferry validates var.stage
# What a .tfbackend may set, by backend type (Terraform's documented settings, the common ones).
BACKEND_SETTINGS = {
    "local": {"path", "workspace_dir"},
    "s3": {
        "bucket",
        "key",
        "region",
        "use_lockfile",
        "encrypt",
        "kms_key_id",
        "dynamodb_table",
        "workspace_key_prefix",
        "profile",
        "assume_role",
        "acl",
        "endpoints",
        "shared_config_files",
        "shared_credentials_files",
        "allowed_account_ids",
        "forbidden_account_ids",
        "skip_region_validation",
        "use_path_style",
    },
}
BACKEND_REQUIRED = {"local": {"path"}, "s3": {"bucket", "key", "region"}}


def root_layout_problems(terraform_dir: Path) -> list[str]:
    """One root: terraform/ holds exactly the four root files, and every other directory with
    .tf files is a module (terraform/modules/<name>); no per-stage copies of the root."""
    problems = []
    present = sorted(p.name for p in terraform_dir.glob("*.tf"))
    if present != sorted(ROOT_FILES):
        problems.append(f"{terraform_dir.name}/: root files are {present}, expected {sorted(ROOT_FILES)}")
    for directory in sorted({p.parent for p in terraform_dir.rglob("*.tf")} - {terraform_dir}):
        relative = directory.relative_to(terraform_dir)
        if ".terraform" in relative.parts:  # what `terraform init` downloads
            continue
        if len(relative.parts) != 2 or relative.parts[0] != "modules":
            problems.append(f"{terraform_dir.name}/{relative}: .tf files outside the root and modules/<name>")
    return problems


def backend_type(versions: TfFile) -> str | None:
    backends = [b for t in versions.doc.get("terraform", []) for b in t.get("backend", [])]
    return next(iter(backends[0])) if len(backends) == 1 and len(backends[0]) == 1 else None


def backend_problems(versions: TfFile) -> list[str]:
    """The root declares its backend's type only (partial configuration): the settings, and so the
    state, come from each stage's .tfbackend at `terraform init -backend-config=...`."""
    backends = [b for t in versions.doc.get("terraform", []) for b in t.get("backend", [])]
    if len(backends) != 1 or len(backends[0]) != 1:
        return [f"{versions.name}: expected exactly one backend block, found {len(backends)}"]
    ((type_, settings),) = backends[0].items()
    problems = []
    if type_ not in BACKEND_SETTINGS:
        problems.append(f"{versions.name}: backend {type_!r} is not one of {sorted(BACKEND_SETTINGS)}")
    if settings:
        problems.append(
            f"{versions.name}: backend {type_!r} sets {sorted(settings)}: a partially configured backend "
            "leaves every setting to stages/<stage>.tfbackend"
        )
    return problems


def stage_file_problems(stages_dir: Path) -> list[str]:
    """Every stage has both files, and a stage's name is one var.stage accepts."""
    tfvars = {p.name.removesuffix(".tfvars") for p in stages_dir.glob("*.tfvars")}
    backends = {p.name.removesuffix(".tfbackend") for p in stages_dir.glob("*.tfbackend")}
    problems = [f"stages/{s}.tfvars has no stages/{s}.tfbackend" for s in sorted(tfvars - backends)]
    problems += [f"stages/{s}.tfbackend has no stages/{s}.tfvars" for s in sorted(backends - tfvars)]
    problems += [f"stages/{s}: not a valid stage name" for s in sorted(tfvars | backends) if not STAGE_NAME.match(s)]
    if not tfvars | backends:
        problems.append(f"{stages_dir.name}/: no stage")
    return problems


def stage_tfvars_problems(f: TfFile, stage: str, declared: set[str], generated: set[str]) -> list[str]:
    """A stage's committed .tfvars sets only variables the root declares, names its own stage, and
    leaves what `ferry tfvars` writes alone (passed last, it would silently override the spec)."""
    problems = [
        f"{f.name}: sets {name!r}, which terraform/variables.tf does not declare"
        for name in f.doc
        if name not in declared
    ]
    problems += [
        f"{f.name}: sets {name!r}, which `ferry tfvars` writes from the spec and the sources"
        for name in f.doc
        if name in generated and name != "stage"
    ]
    if f.doc.get("stage") != stage:
        problems.append(f"{f.name}: stage = {f.doc.get('stage')!r}, expected {stage!r}")
    return problems


def tfbackend_problems(f: TfFile, type_: str) -> list[str]:
    """A .tfbackend holds only literal settings of the root's backend type (no variables, which
    belong in the stage's .tfvars; Terraform rejects expressions there) and the required ones."""
    allowed = BACKEND_SETTINGS.get(type_, set())
    problems = [f"{f.name}: {name!r} is not a setting of the {type_} backend" for name in f.doc if name not in allowed]
    problems += [
        f"{f.name}: {name} = {value!r} is an expression" for name, value in f.doc.items() if "${" in repr(value)
    ]
    problems += [
        f"{f.name}: {type_} backend without {name}" for name in sorted(BACKEND_REQUIRED.get(type_, set()) - set(f.doc))
    ]
    return problems


def _tokens(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError:
        return []


def plan_command_problems(commands: list[str], stage: str) -> list[str]:
    """The commands `make plan` (or `make deploy`) runs for a stage, as `make -n` prints them:
    `ferry tfvars` writes stages/<stage>.ferry.tfvars.json, `terraform init` reads the stage's
    .tfbackend, `terraform plan` passes the generated file first and the committed sizing last
    (the last -var-file wins) and saves stages/<stage>.tfplan, which `apply` (if any) applies."""
    found: dict[str, tuple[int, list[str], str]] = {}  # step -> (index, tokens, -chdir)
    out = None
    for index, line in enumerate(commands):
        tokens = _tokens(line)
        for i, token in enumerate(tokens[:-1]):
            if (token == "ferry" or token.endswith("/ferry")) and tokens[i + 1] == "tfvars" and "tfvars" not in found:
                found["tfvars"] = (index, tokens, "")
                if "--out" in tokens[:-1]:
                    out = tokens[tokens.index("--out") + 1]
                if "--stage" not in tokens[:-1] or tokens[tokens.index("--stage") + 1] != stage:
                    found["bad-stage"] = (index, tokens, "")
            if token.startswith("-chdir=") and tokens[i + 1] in ("init", "plan", "apply"):
                found.setdefault(tokens[i + 1], (index, tokens, token.removeprefix("-chdir=")))
    problems = [f"no `{step}` command" for step in ("tfvars", "init", "plan") if step not in found]
    if problems:
        return problems
    if "bad-stage" in found:
        problems.append(f"`ferry tfvars` does not get --stage {stage}")
    if not found["tfvars"][0] < found["init"][0] < found["plan"][0]:
        problems.append("the order must be `ferry tfvars`, `terraform init`, `terraform plan`")
    _, init, root = found["init"]
    _, plan, plan_root = found["plan"]
    if plan_root != root:
        problems.append(f"init runs in {root!r}, plan in {plan_root!r}")
    if "-reconfigure" not in init:
        problems.append("`terraform init` without -reconfigure keeps the previous stage's backend")
    if f"-backend-config=stages/{stage}.tfbackend" not in init:
        problems.append(f"`terraform init` without -backend-config=stages/{stage}.tfbackend")
    generated, committed = f"stages/{stage}.ferry.tfvars.json", f"stages/{stage}.tfvars"
    if out is None or posixpath.normpath(posixpath.relpath(out, root)) != generated:
        problems.append(f"`ferry tfvars --out {out}` does not write {root}/{generated}")
    var_files = [t.removeprefix("-var-file=") for t in plan if t.startswith("-var-file=")]
    if sorted(var_files) == sorted([generated, committed]) and var_files != [generated, committed]:
        problems.append(f"-var-file order {var_files}: the committed sizing ({committed}) must come last, so it wins")
    elif var_files != [generated, committed]:
        problems.append(f"`terraform plan` -var-file {var_files}, expected [{generated!r}, {committed!r}]")
    plan_file = next((t.removeprefix("-out=") for t in plan if t.startswith("-out=")), None)
    if plan_file != f"stages/{stage}.tfplan":
        problems.append(f"`terraform plan` -out={plan_file}, expected stages/{stage}.tfplan")
    if "apply" in found:
        apply_index, apply, apply_root = found["apply"]
        if apply_index < found["plan"][0] or apply_root != root or apply[-1] != plan_file:
            problems.append(f"`terraform apply` must apply {root}/{plan_file} after the plan, got {' '.join(apply)}")
    return problems


# --- Glue job arguments: the whole spec as --spec_json, per run --source ------------------------

# ferry's own arguments are snake_case (--spec_json); Glue's are kebab-case (--extra-py-files).
_FERRY_ARGUMENT = re.compile(r"""["']--([a-z0-9_]+)["']""")
_SPEC_ARGUMENT = re.compile(r"""["']--spec_json["']\s*[=:]\s*["']?(?:\$\{)?var\.spec_json\b(?!_)""")


def glue_job_argument_problems(f: TfFile) -> list[str]:
    """Every Glue job's default arguments set "--spec_json" = var.spec_json and no other ferry
    argument (the spec carries the region, state table and roles; `--source` comes per run).
    Locals merged into default_arguments count as part of them."""
    local_values = {name: value for entry in f.doc.get("locals", []) for name, value in entry.items()}
    problems = []
    for _, name, body in blocks(f, "resource", "aws_glue_job"):
        where = f"{f.name}: aws_glue_job.{name}"
        expression = str(body.get("default_arguments", ""))
        merged = [
            repr(local_values[n]) for n in re.findall(r"\blocal\.([A-Za-z0-9_]+)", expression) if n in local_values
        ]
        text = " ".join([expression, *merged])
        if not _SPEC_ARGUMENT.search(text):
            problems.append(f'{where}: default_arguments must set "--spec_json" = var.spec_json')
        extra = sorted(f"--{a}" for a in set(_FERRY_ARGUMENT.findall(text)) - {"spec_json"})
        if extra:
            problems.append(f"{where}: default_arguments pass {extra}: the jobs read them from --spec_json")
    return problems
