"""Static checks of terraform/: every .tf file parsed with python-hcl2, the invariants of
tests/terraform/invariants.py run on the whole tree and, as negative controls, on small bad snippets
(each must be caught), the root variables checked against the `ferry tfvars` contract, and the
stages (terraform/stages/<stage>.tfvars + <stage>.tfbackend) against the one root and the Makefile.

Nothing here needs providers or credentials: `terraform init/validate/plan` cannot run offline.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

invariants = pytest.importorskip(
    "tests.terraform.invariants",
    reason="python-hcl2 8.x is not installed (pip install python-hcl2==8.1.4)",
    exc_type=ImportError,
)

pytestmark = pytest.mark.terraform

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
MODULES = TERRAFORM / "modules"
STAGES_DIR = TERRAFORM / "stages"
STAGES = ("dev", "prod")
COMPOSITION = MODULES / "ferry"


@functools.cache
def tree() -> tuple[Any, ...]:
    return tuple(invariants.load(path, ROOT) for path in sorted(TERRAFORM.rglob("*.tf")))


def by_directory() -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for f in tree():
        out.setdefault(str(Path(f.name).parent), []).append(f)
    return out


def in_dir(directory: Path) -> list[Any]:
    return by_directory()[str(directory.relative_to(ROOT))]


def module_files() -> list[Any]:
    return [f for f in tree() if f.name.startswith("terraform/modules/")]


def count(type_: str, kind: str = "resource") -> int:
    return sum(1 for f in tree() for _ in invariants.blocks(f, kind, type_))


def report(problems: list[str]) -> str:
    return "\n".join(problems)


# --- the invariants on the real tree --------------------------------------------------------------


def test_every_tf_file_parses() -> None:
    names = {f.name for f in tree()}
    assert len(names) >= 40, f"expected the whole tree, parsed only {sorted(names)}"
    assert "terraform/main.tf" in names and "terraform/modules/ferry/main.tf" in names


def test_every_module_has_the_four_files() -> None:
    modules = [p.name for p in MODULES.iterdir() if p.is_dir()]
    assert len(modules) >= 9, modules
    assert invariants.layout_problems(MODULES) == []


def test_every_variable_is_typed_and_described() -> None:
    assert sum(1 for f in tree() for _ in invariants.named(f, "variable")) > 100
    assert report([p for f in tree() for p in invariants.variable_problems(f)]) == ""


def test_every_output_is_described() -> None:
    assert report([p for f in tree() for p in invariants.output_problems(f)]) == ""


def test_no_provider_block_inside_modules() -> None:
    assert report([p for f in module_files() for p in invariants.provider_problems(f)]) == ""


def test_count_is_only_an_on_off_switch() -> None:
    assert report([p for f in tree() for p in invariants.count_problems(f)]) == ""


def test_event_source_mappings_are_safe() -> None:
    kinds = [
        invariants._event_source_kind(body)
        for f in tree()
        for _, _, body in invariants.blocks(f, "resource", "aws_lambda_event_source_mapping")
    ]
    assert sorted(kinds) == ["sqs", "stream"], f"expected one stream and one SQS mapping resource, found {kinds}"
    assert report([p for f in tree() for p in invariants.event_source_mapping_problems(f)]) == ""


def test_every_queue_has_a_dead_letter_path() -> None:
    assert count("aws_sqs_queue") >= 3
    assert report([p for files in by_directory().values() for p in invariants.queue_problems(files)]) == ""


def test_policies_name_actions_and_explain_star_resources() -> None:
    assert count("aws_iam_policy_document", "data") >= 10
    assert report([p for f in tree() for p in invariants.policy_problems(f)]) == ""


def test_everything_stored_is_encrypted_and_buckets_are_locked_down() -> None:
    assert count("aws_s3_bucket") >= 2 and count("aws_dynamodb_table") >= 2
    assert report([p for files in by_directory().values() for p in invariants.encryption_problems(files)]) == ""


def test_functions_are_traced_encrypted_and_configured() -> None:
    assert count("aws_lambda_function") == 2
    assert report([p for f in tree() for p in invariants.lambda_problems(f)]) == ""


def test_every_module_pins_terraform_and_the_aws_provider() -> None:
    problems = []
    for module in sorted(p for p in MODULES.iterdir() if p.is_dir()):
        (f,) = [f for f in in_dir(module) if f.name.endswith("/versions.tf")]
        (terraform,) = f.doc.get("terraform", [{}])
        providers = terraform.get("required_providers", [{}])[0]
        aws = providers.get("aws", {})
        if terraform.get("required_version") != ">= 1.5":
            problems.append(f"{f.name}: required_version must be >= 1.5")
        if aws.get("source") != "hashicorp/aws" or aws.get("version") != ">= 5.40":
            problems.append(f"{f.name}: aws must be hashicorp/aws >= 5.40, got {aws}")
    assert report(problems) == ""


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH")
def test_terraform_fmt_is_clean() -> None:
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"terraform fmt -recursive terraform/ would change:\n{result.stdout}{result.stderr}"


# --- negative controls: every invariant catches a hand-written bad snippet --------------------------

STREAM_MAPPING = """
resource "aws_lambda_event_source_mapping" "stream" {
  event_source_arn              = each.value.source_stream_arn
  function_name                 = aws_lambda_function.this.arn
  starting_position             = "TRIM_HORIZON"
  maximum_retry_attempts        = 3
  maximum_record_age_in_seconds = 3600
  %(bisect)s
  function_response_types       = ["ReportBatchItemFailures"]
  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.failures.arn
    }
  }
  depends_on = [aws_iam_role_policy.this]
}
"""

BARE_BUCKET = """
resource "aws_s3_bucket" "loose" {
  bucket = "loose"
}
"""

# `make -n plan STAGE=prod` as it should print the Terraform steps.
PLAN_COMMANDS = "".join(
    [
        ".venv/bin/ferry tfvars --spec ferry.yaml --stage prod --out terraform/stages/prod.ferry.tfvars.json\n",
        "terraform -chdir=terraform init -input=false -reconfigure -backend-config=stages/prod.tfbackend\n",
        "terraform -chdir=terraform plan -input=false -var-file=stages/prod.ferry.tfvars.json",
        " -var-file=stages/prod.tfvars -out=stages/prod.tfplan\n",
    ]
)

GLUE_JOB = """
locals {
  glue_arguments = { "--job-language" = "python" }
  %(local)s
}
resource "aws_glue_job" "table" {
  name              = "j"
  default_arguments = merge(local.glue_arguments, %(merged)s{
    %(arguments)s
  })
}
"""


def _glue_job(arguments: str, local: str = "", merged: str = "") -> str:
    return GLUE_JOB % {"arguments": arguments, "local": local, "merged": merged}


def _stage_tfvars(stage: str) -> Callable[[str], list[str]]:
    return lambda text: invariants.stage_tfvars_problems(invariants.parse(text), stage, set(CONTRACT), GENERATED)


def _tfbackend(type_: str) -> Callable[[str], list[str]]:
    return lambda text: invariants.tfbackend_problems(invariants.parse(text), type_)


def _plan(stage: str) -> Callable[[str], list[str]]:
    return lambda text: invariants.plan_command_problems(text.splitlines(), stage)


def _one_file(check: Callable[[Any], list[str]]) -> Callable[[str], list[str]]:
    return lambda text: check(invariants.parse(text))


def _per_module(check: Callable[[list[Any]], list[str]]) -> Callable[[str], list[str]]:
    return lambda text: check([invariants.parse(text)])


CONTROLS: list[tuple[str, Callable[[str], list[str]], str, str]] = [
    (
        "variable without type or description",
        _one_file(invariants.variable_problems),
        'variable "x" {\n  default = 1\n}\n',
        "has no type",
    ),
    (
        "output without description",
        _one_file(invariants.output_problems),
        'output "x" {\n  value = 1\n}\n',
        "no description",
    ),
    (
        "provider in a module",
        _one_file(invariants.provider_problems),
        'provider "aws" {\n  region = "us-east-1"\n}\n',
        "provider 'aws'",
    ),
    (
        "count over a list",
        _one_file(invariants.count_problems),
        'resource "aws_sqs_queue" "q" {\n  count = length(var.names)\n  name  = var.names[count.index]\n}\n',
        "use for_each",
    ),
    (
        "stream mapping without bisect",
        _one_file(invariants.event_source_mapping_problems),
        STREAM_MAPPING % {"bisect": ""},
        "without bisect_batch_on_function_error",
    ),
    (
        "stream mapping with infinite retries",
        _one_file(invariants.event_source_mapping_problems),
        STREAM_MAPPING.replace("= 3\n", "= -1\n") % {"bisect": "bisect_batch_on_function_error = true"},
        "maximum_retry_attempts = -1",
    ),
    (
        "stream mapping without on-failure destination",
        _one_file(invariants.event_source_mapping_problems),
        re.sub(r"  destination_config \{.*?\n  \}\n", "", STREAM_MAPPING, flags=re.S)
        % {"bisect": "bisect_batch_on_function_error = true"},
        "destination_config.on_failure",
    ),
    (
        "stream mapping without depends_on",
        _one_file(invariants.event_source_mapping_problems),
        STREAM_MAPPING.replace("  depends_on = [aws_iam_role_policy.this]\n", "")
        % {"bisect": "bisect_batch_on_function_error = true"},
        "depend_on",
    ),
    (
        "SQS mapping without partial batch responses",
        _one_file(invariants.event_source_mapping_problems),
        'resource "aws_lambda_event_source_mapping" "q" {\n  event_source_arn = aws_sqs_queue.this.arn\n'
        '  function_name    = "f"\n  depends_on       = [aws_iam_role_policy.this]\n}\n',
        "ReportBatchItemFailures",
    ),
    (
        "queue without redrive that is no dead-letter destination",
        _per_module(invariants.queue_problems),
        'resource "aws_sqs_queue" "orphan" {\n  name              = "orphan"\n  kms_master_key_id = var.key\n}\n',
        "no redrive_policy",
    ),
    (
        "dead-letter queue with the default retention",
        _per_module(invariants.queue_problems),
        'resource "aws_sqs_queue" "dlq" {\n  name = "dlq"\n}\n'
        'resource "aws_sqs_queue" "main" {\n  name           = "main"\n'
        "  redrive_policy = jsonencode({ deadLetterTargetArn = aws_sqs_queue.dlq.arn, maxReceiveCount = 5 })\n}\n",
        "message_retention_seconds must be 1209600",
    ),
    (
        "service wildcard action",
        _one_file(invariants.policy_problems),
        'data "aws_iam_policy_document" "p" {\n  statement {\n    actions   = ["dynamodb:*"]\n'
        '    resources = ["arn:aws:dynamodb:us-east-1:123456789012:table/t"]\n  }\n}\n',
        "'dynamodb:*' is not one named API action",
    ),
    (
        "bare star action",
        _one_file(invariants.policy_problems),
        'data "aws_iam_policy_document" "p" {\n  statement {\n    actions   = ["*"]\n'
        '    resources = ["arn:aws:s3:::b"]\n  }\n}\n',
        "'*' is not one named API action",
    ),
    (
        "prefix wildcard in a dynamic statement",
        _one_file(invariants.policy_problems),
        'data "aws_iam_policy_document" "p" {\n  dynamic "statement" {\n    for_each = [1]\n    content {\n'
        '      actions   = ["s3:Get*"]\n      resources = ["arn:aws:s3:::b/*"]\n    }\n  }\n}\n',
        "'s3:Get*' is not one named API action",
    ),
    (
        "actions from an expression",
        _one_file(invariants.policy_problems),
        'data "aws_iam_policy_document" "p" {\n  statement {\n    actions   = local.actions\n'
        '    resources = ["arn:aws:s3:::b"]\n  }\n}\n',
        "literal, non-empty list",
    ),
    (
        "star resources without a comment",
        _one_file(invariants.policy_problems),
        'data "aws_iam_policy_document" "p" {\n  statement {\n    actions   = ["xray:PutTraceSegments"]\n'
        '    resources = ["*"]\n  }\n}\n',
        "needs a comment right above it",
    ),
    (
        "table without encryption",
        _per_module(invariants.encryption_problems),
        'resource "aws_dynamodb_table" "t" {\n  name     = "t"\n  hash_key = "pk"\n'
        "  point_in_time_recovery {\n    enabled = true\n  }\n}\n",
        "without server_side_encryption",
    ),
    (
        "queue without encryption",
        _per_module(invariants.encryption_problems),
        'resource "aws_sqs_queue" "q" {\n  name = "q"\n}\n',
        "without kms_master_key_id",
    ),
    ("bucket without encryption", _per_module(invariants.encryption_problems), BARE_BUCKET, "aws:kms"),
    (
        "bucket without public access block",
        _per_module(invariants.encryption_problems),
        BARE_BUCKET,
        "public_access_block",
    ),
    ("bucket without multipart abort rule", _per_module(invariants.encryption_problems), BARE_BUCKET, "multipart"),
    (
        "function without tracing",
        _one_file(invariants.lambda_problems),
        'resource "aws_lambda_function" "f" {\n  function_name = "f"\n  filename = "p.zip"\n'
        '  source_code_hash = filebase64sha256("p.zip")\n  kms_key_arn = var.key\n'
        "  reserved_concurrent_executions = 1\n}\n",
        "tracing_config.mode must be Active",
    ),
    (
        "root backend with settings",
        _one_file(invariants.backend_problems),
        'terraform {\n  backend "s3" {\n    bucket = "b"\n  }\n}\n',
        "partially configured backend",
    ),
    (
        "root without a backend",
        _one_file(invariants.backend_problems),
        'terraform {\n  required_version = ">= 1.5"\n}\n',
        "exactly one backend block",
    ),
    (
        "stage tfvars sets an undeclared variable",
        _stage_tfvars("dev"),
        'stage = "dev"\nglue_workers = 3\n',
        "'glue_workers', which terraform/variables.tf does not declare",
    ),
    (
        "stage tfvars overrides what ferry tfvars writes",
        _stage_tfvars("dev"),
        'stage = "dev"\nstate_table_name = "other"\n',
        "'state_table_name', which `ferry tfvars` writes",
    ),
    ("stage tfvars of another stage", _stage_tfvars("dev"), 'stage = "prod"\n', "expected 'dev'"),
    (
        "tfbackend sets a variable",
        _tfbackend("local"),
        'path = "state/dev.tfstate"\nstage = "dev"\n',
        "'stage' is not a setting of the local backend",
    ),
    (
        "tfbackend sets another backend's setting",
        _tfbackend("local"),
        'path = "state/dev.tfstate"\nbucket = "b"\n',
        "'bucket' is not a setting of the local backend",
    ),
    ("local tfbackend without path", _tfbackend("local"), 'workspace_dir = "w"\n', "local backend without path"),
    ("s3 tfbackend without key", _tfbackend("s3"), 'bucket = "b"\nregion = "us-east-1"\n', "s3 backend without key"),
    (
        "plan passes the committed sizing first",
        _plan("prod"),
        PLAN_COMMANDS.replace(
            "-var-file=stages/prod.ferry.tfvars.json -var-file=stages/prod.tfvars",
            "-var-file=stages/prod.tfvars -var-file=stages/prod.ferry.tfvars.json",
        ),
        "must come last",
    ),
    (
        "plan without the generated variables",
        _plan("prod"),
        PLAN_COMMANDS.replace("-var-file=stages/prod.ferry.tfvars.json ", ""),
        "expected ['stages/prod.ferry.tfvars.json', 'stages/prod.tfvars']",
    ),
    (
        "init without the stage's backend",
        _plan("prod"),
        PLAN_COMMANDS.replace(" -backend-config=stages/prod.tfbackend", ""),
        "without -backend-config=stages/prod.tfbackend",
    ),
    (
        "init without -reconfigure",
        _plan("prod"),
        PLAN_COMMANDS.replace(" -reconfigure", ""),
        "without -reconfigure",
    ),
    (
        "ferry tfvars writes where the plan does not read",
        _plan("prod"),
        PLAN_COMMANDS.replace(
            "--out terraform/stages/prod.ferry.tfvars.json", "--out terraform/envs/prod/ferry.auto.tfvars.json"
        ),
        "does not write terraform/stages/prod.ferry.tfvars.json",
    ),
    (
        "plan before ferry tfvars",
        _plan("prod"),
        "\n".join(PLAN_COMMANDS.splitlines()[1:] + PLAN_COMMANDS.splitlines()[:1]),
        "the order must be",
    ),
    ("plan of another stage", _plan("dev"), PLAN_COMMANDS, "does not get --stage dev"),
    (
        "apply of another plan file",
        _plan("prod"),
        PLAN_COMMANDS + "terraform -chdir=terraform apply -input=false tfplan\n",
        "must apply terraform/stages/prod.tfplan",
    ),
    (
        "Glue job with an argument the spec carries",
        _one_file(invariants.glue_job_argument_problems),
        _glue_job('"--spec_json" = var.spec_json\n    "--region" = var.region'),
        "pass ['--region']",
    ),
    (
        "Glue job with role arguments merged from a local",
        _one_file(invariants.glue_job_argument_problems),
        _glue_job(
            '"--spec_json" = var.spec_json',
            local='role_arguments = { "--source_role_arn" = var.source_role_arn }',
            merged="local.role_arguments, ",
        ),
        "pass ['--source_role_arn']",
    ),
    (
        "Glue job without the spec",
        _one_file(invariants.glue_job_argument_problems),
        _glue_job('"--state_table" = var.state_table_name'),
        'must set "--spec_json" = var.spec_json',
    ),
    (
        "Glue job with the spec from another variable",
        _one_file(invariants.glue_job_argument_problems),
        _glue_job('"--spec_json" = var.spec_json_v2'),
        'must set "--spec_json" = var.spec_json',
    ),
]


@pytest.mark.parametrize(("check", "snippet", "expected"), [c[1:] for c in CONTROLS], ids=[c[0] for c in CONTROLS])
def test_negative_control_is_caught(check: Callable[[str], list[str]], snippet: str, expected: str) -> None:
    problems = check(snippet)
    assert any(expected in p for p in problems), f"expected a problem containing {expected!r}, got {problems}"


GOOD = [
    (
        "typed variable",
        _one_file(invariants.variable_problems),
        'variable "x" {\n  type = number\n  description = "d"\n}\n',
    ),
    (
        "count as a switch",
        _one_file(invariants.count_problems),
        'resource "aws_sqs_queue" "q" {\n  count = var.on ? 1 : 0\n}\n',
    ),
    (
        "complete stream mapping",
        _one_file(invariants.event_source_mapping_problems),
        STREAM_MAPPING % {"bisect": "bisect_batch_on_function_error = true"},
    ),
    (
        "TLS deny and a commented star statement",
        _one_file(invariants.policy_problems),
        'data "aws_iam_policy_document" "p" {\n  statement {\n    effect    = "Deny"\n    actions   = ["s3:*"]\n'
        '    resources = ["arn:aws:s3:::b/*"]\n  }\n\n  # X-Ray has no resource-level permissions.\n  statement {\n'
        '    actions   = ["xray:PutTraceSegments"]\n    resources = ["*"]\n  }\n}\n',
    ),
    ("partial backend", _one_file(invariants.backend_problems), 'terraform {\n  backend "local" {}\n}\n'),
    ("stage tfvars with sizing only", _stage_tfvars("prod"), 'stage = "prod"\nglue_number_of_workers = 10\n'),
    ("local tfbackend", _tfbackend("local"), 'path = "state/dev.tfstate"\n'),
    (
        "s3 tfbackend (terraform/README.md: switching to a shared state)",
        _tfbackend("s3"),
        'bucket = "b"\nkey = "ferry/prod.tfstate"\nregion = "us-east-1"\nuse_lockfile = true\n',
    ),
    ("plan commands", _plan("prod"), PLAN_COMMANDS),
    (
        "plan and apply commands",
        _plan("prod"),
        PLAN_COMMANDS + "terraform -chdir=terraform apply -input=false stages/prod.tfplan\n",
    ),
    (
        "Glue job with the spec",
        _one_file(invariants.glue_job_argument_problems),
        _glue_job('"--spec_json" = var.spec_json'),
    ),
]


@pytest.mark.parametrize(("check", "snippet"), [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
def test_positive_control_passes(check: Callable[[str], list[str]], snippet: str) -> None:
    assert check(snippet) == []


def test_layout_control_catches_a_missing_file(tmp_path: Path) -> None:
    module = tmp_path / "broken"
    module.mkdir()
    for name in ("main.tf", "variables.tf", "versions.tf"):
        (module / name).write_text("", encoding="utf-8")
    assert invariants.layout_problems(tmp_path) == ["broken: missing outputs.tf"]


def test_root_layout_control_catches_a_copied_root(tmp_path: Path) -> None:
    terraform = tmp_path / "terraform"
    for directory in (terraform, terraform / "envs" / "dev", terraform / "modules" / "x"):
        directory.mkdir(parents=True, exist_ok=True)
        for name in invariants.ROOT_FILES:
            (directory / name).write_text("", encoding="utf-8")
    assert invariants.root_layout_problems(terraform) == [
        "terraform/envs/dev: .tf files outside the root and modules/<name>"
    ]
    (terraform / "outputs.tf").unlink()
    assert "terraform/: root files are" in invariants.root_layout_problems(terraform)[0]


def test_stage_control_catches_a_stage_without_its_backend(tmp_path: Path) -> None:
    for name in ("dev.tfvars", "dev.tfbackend", "qa.tfvars", "dev.ferry.tfvars.json"):
        (tmp_path / name).write_text("", encoding="utf-8")
    assert invariants.stage_file_problems(tmp_path) == ["stages/qa.tfvars has no stages/qa.tfbackend"]
    (tmp_path / "Prod.tfbackend").write_text("", encoding="utf-8")
    assert "stages/Prod: not a valid stage name" in invariants.stage_file_problems(tmp_path)


# --- the root contract (`ferry tfvars` writes stages/<stage>.ferry.tfvars.json with these keys) ------

REQUIRED = "<required>"
TABLE_TYPE = """list(object({
  source = string, target = string, source_arn = string, source_stream_arn = string, protocol = string,
  create_target = bool,
  target_arn = string, target_stream_arn = optional(string, ""), hash_key = string, range_key = optional(string),
  attributes = list(object({name = string, type = string})),
  billing_mode = string, read_capacity = optional(number), write_capacity = optional(number),
  global_secondary_indexes = optional(list(object({name = string, hash_key = string, range_key = optional(string),
    projection_type = string, non_key_attributes = optional(list(string)), read_capacity = optional(number),
    write_capacity = optional(number)})), []),
  local_secondary_indexes = optional(list(object({name = string, range_key = string, projection_type = string,
    non_key_attributes = optional(list(string))})), []),
  ttl_attribute = optional(string)}))"""
BUCKET_TYPE = """list(object({source = string, target = string, prefix = string, create_target = bool,
  versioning = bool, manage_source_notifications = bool}))"""
STREAM_MAPPING_TYPE = """object({batch_size = number, maximum_retry_attempts = number,
  maximum_record_age_in_seconds = number, bisect_batch_on_function_error = bool, starting_position = string,
  parallelization_factor = number, maximum_batching_window_in_seconds = number})"""
BUCKET_EVENTS_TYPE = """object({queue_name = string, max_receive_count = number, visibility_timeout_seconds = number,
  batch_size = number, maximum_batching_window_in_seconds = number, message_retention_seconds = number,
  hold_until_release = bool})"""
BACKFILL_TYPE = """object({read = string, write = string, insert_mode = string, export_bucket = string,
  create_export_bucket = bool, export_prefix = string, export_expiry_days = number})"""

CONTRACT: dict[str, tuple[str, Any]] = {
    "stage": ("string", REQUIRED),
    "region": ("string", REQUIRED),
    "spec_json": ("string", REQUIRED),
    "state_table_name": ("string", REQUIRED),
    "source_role_arn": ("string", None),
    "target_role_arn": ("string", None),
    "tables": (TABLE_TYPE, []),
    "buckets": (BUCKET_TYPE, []),
    "stream_mapping": (STREAM_MAPPING_TYPE, REQUIRED),
    "stream_failure_queue_name": ("string", REQUIRED),
    "bucket_events": (BUCKET_EVENTS_TYPE, REQUIRED),
    "backfill": (BACKFILL_TYPE, REQUIRED),
    "reverse": ("bool", False),
    "lambda_package": ("string", "../build/chalice/deployment.zip"),
    "ferry_zip": ("string", "../build/ferry.zip"),
    "glue_scripts_dir": ("string", "../glue_jobs"),
    "glue_version": ("string", "5.0"),
    "glue_worker_type": ("string", "G.1X"),
    "glue_number_of_workers": ("number", 2),
    "lambda_memory_size": ("number", 512),
    "lambda_timeout": ("number", 120),
    "lambda_reserved_concurrency": ("number", 100),
    "kms_key_arn": ("string", None),
    "alarm_actions": ("list(string)", []),
    "iterator_age_alarm_seconds": ("number", 300),
    "log_retention_days": ("number", 365),
    "tags": ("map(string)", {}),
}

ROOT_OUTPUTS = {
    "state_table_name",
    "target_table_names",
    "target_table_arns",
    "target_bucket_names",
    "artifacts_bucket",
    "table_backfill_job_name",
    "bucket_backfill_job_name",
    "function_names",
    "function_arns",
    "stream_event_source_mapping_uuids",
    "bucket_events_event_source_mapping_uuid",
    "stream_tables_mapped_at_release",
    "export_bucket",
    "events_queue_url",
    "events_dlq_url",
    "stream_failure_queue_url",
    "role_arns",
    "kms_key_arn",
    "source_account_policy_hints",
    "reverse_stream_event_source_mapping_uuids",
    "reverse_events_queue_url",
}


def _type(expression: str) -> str:
    if expression.startswith("${") and expression.endswith("}"):
        expression = expression[2:-1]
    return re.sub(r"\s+", "", expression)


def declared_variables(directory: Path) -> dict[str, dict[str, Any]]:
    return {name: body for f in in_dir(directory) for name, body in invariants.named(f, "variable")}


@pytest.mark.parametrize("directory", [TERRAFORM, COMPOSITION], ids=["root", "ferry"])
def test_variables_match_the_tfvars_contract(directory: Path) -> None:
    declared = declared_variables(directory)
    assert sorted(declared) == sorted(CONTRACT), "variables differ from the `ferry tfvars` contract"
    problems = []
    for name, (type_, default) in CONTRACT.items():
        body = declared[name]
        if _type(str(body.get("type"))) != _type(type_):
            problems.append(f"{name}: type {body.get('type')} is not {type_}")
        if default == REQUIRED:
            if "default" in body:
                problems.append(f"{name}: must be required (no default), has {body['default']!r}")
        elif body.get("default", REQUIRED) != default:
            problems.append(f"{name}: default {body.get('default', REQUIRED)!r} is not {default!r}")
    assert report(problems) == ""


@pytest.mark.parametrize("directory", [TERRAFORM, COMPOSITION], ids=["root", "ferry"])
def test_default_paths_are_relative_to_the_root(directory: Path) -> None:
    """`terraform -chdir=terraform` resolves the artifact paths from terraform/."""
    declared = declared_variables(directory)
    assert (TERRAFORM / declared["glue_scripts_dir"]["default"] / "table_backfill.py").is_file()
    for name, artifact in (("lambda_package", "build/chalice/deployment.zip"), ("ferry_zip", "build/ferry.zip")):
        assert (TERRAFORM / declared[name]["default"]).resolve() == (ROOT / artifact).resolve(), name


def test_root_is_thin_and_passes_every_variable_through() -> None:
    files = in_dir(TERRAFORM)
    assert sorted(Path(f.name).name for f in files) == ["main.tf", "outputs.tf", "variables.tf", "versions.tf"]
    modules = [(name, body) for f in files for name, body in invariants.named(f, "module")]
    assert [name for name, _ in modules] == ["ferry"], "the root must call only the composition module"
    (_, call), *_ = modules
    assert call["source"] == "./modules/ferry"
    missing = [name for name in CONTRACT if call.get(name) != f"${{var.{name}}}"]
    assert missing == [], f"module.ferry does not receive var.<name> for {missing}"
    assert not [r for f in files for r in invariants.blocks(f, "resource")], "resources belong in modules"


def test_root_configures_the_provider() -> None:
    providers = dict(invariants.named(root_file("versions.tf"), "provider"))
    assert providers["aws"]["region"] == "${var.region}"
    tags = invariants.first(providers["aws"], "default_tags") or {}
    assert "Stage" in str(tags.get("tags")), "default_tags must name the stage"


def test_root_outputs_are_complete() -> None:
    outputs = {name for f in in_dir(TERRAFORM) for name, _ in invariants.named(f, "output")}
    assert outputs >= ROOT_OUTPUTS, f"missing outputs {sorted(ROOT_OUTPUTS - outputs)}"


# --- one root; a stage is stages/<stage>.tfvars + stages/<stage>.tfbackend ---------------------------

# The keys `ferry tfvars` writes (ferry/deploy.py terraform_variables); a stage's .tfvars is passed
# after them, so it must not set them (it would silently override the spec and the sources).
GENERATED = {
    "stage",
    "region",
    "spec_json",
    "state_table_name",
    "source_role_arn",
    "target_role_arn",
    "tables",
    "buckets",
    "stream_mapping",
    "stream_failure_queue_name",
    "bucket_events",
    "backfill",
    "reverse",
}


def test_generated_keys_are_what_ferry_tfvars_writes() -> None:
    from ferry.deploy import terraform_variables
    from ferry.spec import parse_spec

    spec = parse_spec({"region": "us-east-1", "tables": [{"source": "orders", "target": "orders-v2"}]})
    assert set(terraform_variables(spec, "dev", [], [], account="123456789012")) == GENERATED


def root_file(name: str) -> Any:
    (f,) = [f for f in in_dir(TERRAFORM) if Path(f.name).name == name]
    return f


def stage_file(stage: str, suffix: str) -> Any:
    return invariants.load(STAGES_DIR / f"{stage}{suffix}", ROOT)


def test_one_root_and_no_per_stage_copies() -> None:
    assert not (TERRAFORM / "envs").exists(), "terraform/envs/ is gone: a stage is a file in terraform/stages/"
    assert invariants.root_layout_problems(TERRAFORM) == []


def test_the_root_backend_is_partially_configured() -> None:
    versions = root_file("versions.tf")
    assert invariants.backend_problems(versions) == []
    assert invariants.backend_type(versions) == "local"


def test_every_stage_has_both_files() -> None:
    assert invariants.stage_file_problems(STAGES_DIR) == []
    assert sorted(p.name.removesuffix(".tfvars") for p in STAGES_DIR.glob("*.tfvars")) == sorted(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_tfvars_sets_only_declared_sizing(stage: str) -> None:
    assert set(GENERATED) <= set(CONTRACT)
    declared = set(declared_variables(TERRAFORM))
    assert invariants.stage_tfvars_problems(stage_file(stage, ".tfvars"), stage, declared, GENERATED) == []


@pytest.mark.parametrize(("stage", "workers"), [("dev", 2), ("prod", 10)])
def test_stage_sizing_is_committed(stage: str, workers: int) -> None:
    tfvars = stage_file(stage, ".tfvars")
    assert tfvars.doc["stage"] == stage
    assert tfvars.doc["glue_number_of_workers"] == workers
    assert tfvars.doc["lambda_timeout"] == 90  # below the events queue's default visibility timeout


@pytest.mark.parametrize("stage", STAGES)
def test_stage_tfbackend_sets_only_backend_settings(stage: str) -> None:
    backend = stage_file(stage, ".tfbackend")
    assert invariants.tfbackend_problems(backend, invariants.backend_type(root_file("versions.tf"))) == []
    assert backend.doc == {"path": f"state/{stage}.tfstate"}  # relative to terraform/, git-ignored


def test_every_stage_has_its_own_state() -> None:
    states = [tuple(sorted(stage_file(s, ".tfbackend").doc.items())) for s in STAGES]
    assert len(set(states)) == len(STAGES), f"two stages share a state: {states}"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not on PATH")
def test_generated_files_are_ignored_and_stage_files_are_not() -> None:
    generated = [
        "terraform/stages/dev.ferry.tfvars.json",
        "terraform/stages/prod.tfplan",
        "terraform/state/dev.tfstate",
    ]
    committed = ["terraform/stages/dev.tfvars", "terraform/stages/prod.tfbackend", "terraform/main.tf"]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *generated, *committed],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode == 128:
        pytest.skip(f"not a git checkout: {result.stderr.strip()}")
    assert sorted(result.stdout.split()) == sorted(generated)


def make_dry_run(target: str, stage: str) -> list[str]:
    """The commands `make <target>` would run (`make -n` prints them; the recursive `$(MAKE) plan`
    of deploy inherits -n; `-o` leaves the virtualenv stamp out)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "TF", "VENV")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", ".venv/.installed", target, f"STAGE={stage}", "SPEC=ferry.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not on PATH")
@pytest.mark.parametrize("target", ["plan", "deploy"])
@pytest.mark.parametrize("stage", STAGES)
def test_make_uses_the_stage_files_generated_first_committed_last(target: str, stage: str) -> None:
    commands = make_dry_run(target, stage)
    assert invariants.plan_command_problems(commands, stage) == [], "\n".join(commands)
    if target == "deploy":
        assert any(line.endswith(f"apply -input=false stages/{stage}.tfplan") for line in commands), commands


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not on PATH")
def test_make_refuses_a_stage_without_its_files() -> None:
    """Runs the real `credentials` recipe; it must stop at the stage check (`-o` keeps make from
    rebuilding the virtualenv stamp; FERRY=false keeps `ferry whoami` from running if it does not)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "VENV")}
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", "credentials", "FERRY=false"]
    result = subprocess.run(
        [*command, "STAGE=nosuchstage", "SPEC=Makefile"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "terraform/stages/nosuchstage.tfvars is missing" in result.stdout + result.stderr


# --- Glue job arguments: the whole spec as --spec_json, the source per run -----------------------------


def script_reads_the_job_contract(script: str) -> bool:
    """Whether a glue_jobs script asks getResolvedOptions for ferry.jobs' option names (read without importing it)."""
    module = ast.parse((ROOT / "glue_jobs" / script).read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(module)
        if isinstance(node, ast.ImportFrom) and node.module == "ferry.jobs"
        for alias in node.names
    }
    called = {
        node.func.id for node in ast.walk(module) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    return {"resolved_option_names", "job_run_from_arguments"} <= imported & called


def job_arguments(job: str) -> set[str]:
    """The ferry arguments (--name_with_underscores, not Glue's --hyphenated ones) a job's block passes."""
    text = (MODULES / "glue-jobs" / "main.tf").read_text(encoding="utf-8")
    header = re.search(rf'^resource\s+"aws_glue_job"\s+"{job}"\s*\{{', text, re.M)
    assert header, f"no aws_glue_job.{job}"
    block = text[header.end() - 1 : invariants.matching_brace(text, header.end() - 1)]
    return set(re.findall(r'"--([a-z0-9_]+)"', block))


def glue_jobs_main() -> Any:
    (f,) = [f for f in in_dir(MODULES / "glue-jobs") if f.name.endswith("/main.tf")]
    return f


def test_glue_jobs_take_the_spec_as_one_argument() -> None:
    f = glue_jobs_main()
    assert sorted(name for _, name, _ in invariants.blocks(f, "resource", "aws_glue_job")) == ["bucket", "table"]
    assert invariants.glue_job_argument_problems(f) == []
    for job in ("table", "bucket"):
        assert job_arguments(job) == {"spec_json"}, job
    removed = ("--state_table", "--region", "--source_role_arn", "--target_role_arn")
    text = f.text
    assert [a for a in removed if f'"{a}"' in text] == [], "arguments the spec now carries are still passed"


def test_the_composition_passes_the_spec_to_the_glue_jobs() -> None:
    calls = {name: body for f in in_dir(COMPOSITION) for name, body in invariants.named(f, "module")}
    assert calls["glue_jobs"]["spec_json"] == "${var.spec_json}"
    assert "state_table_name" not in calls["glue_jobs"], "the jobs read the state table from the spec"
    variable = declared_variables(MODULES / "glue-jobs")["spec_json"]
    assert _type(str(variable["type"])) == "string" and variable.get("description")


@pytest.mark.parametrize(("job", "script"), [("table", "table_backfill.py"), ("bucket", "bucket_backfill.py")])
def test_glue_job_arguments_are_read_by_their_script(job: str, script: str) -> None:
    from ferry.jobs import resolved_option_names

    # The scripts read exactly ferry.jobs' options: the spec and, per run, the source.
    assert script_reads_the_job_contract(script), f"glue_jobs/{script} does not read ferry.jobs' options"
    read = set(resolved_option_names([]))
    assert read == {"spec_json", "source"}
    passed = job_arguments(job) | {"source"}  # the job passes the spec; each run names its source
    assert passed == read, f"aws_glue_job.{job} passes {sorted(passed - read)}, reads {sorted(read - passed)} unpassed"


def test_terraform_and_ferry_wire_give_the_jobs_the_same_default_arguments() -> None:
    from ferry.jobs import default_arguments
    from ferry.spec import parse_spec

    spec = parse_spec({"region": "us-east-1", "tables": [{"source": "orders", "target": "orders-v2"}]})
    wired = set(default_arguments(spec, "artifacts"))
    text = (MODULES / "glue-jobs" / "main.tf").read_text(encoding="utf-8")
    for job in ("table", "bucket"):
        header = re.search(rf'^resource\s+"aws_glue_job"\s+"{job}"\s*\{{', text, re.M)
        assert header, f"no aws_glue_job.{job}"
        block = text[header.end() - 1 : invariants.matching_brace(text, header.end() - 1)]
        in_terraform = set(re.findall(r'"(--[A-Za-z0-9_-]+)"', block)) | set(
            re.findall(r'"(--[A-Za-z0-9_-]+)"\s*=', _glue_locals(text))
        )
        assert wired <= in_terraform, f"aws_glue_job.{job} lacks {sorted(wired - in_terraform)}"


def _glue_locals(text: str) -> str:
    start = text.index("locals {")
    return text[start : invariants.matching_brace(text, start + len("locals ")) + 1]


# --- the same least privilege as the Chalice quick path (ferry/deploy.py policy_documents) ---------

# Data-plane services; KMS, logs, X-Ray and metrics depend on how each path encrypts and observes.
DATA_PLANE = ("dynamodb:", "s3:", "sqs:", "sts:", "lambda:")
TERRAFORM_DOCUMENTS = {
    "table_stream": ("table-stream", "this"),
    "bucket_events": ("bucket-events", "this"),
    # reverse replication: the same modules, instantiated again with the spec reversed (see the tests below)
    "table_stream_reverse": ("table-stream", "this"),
    "bucket_events_reverse": ("bucket-events", "this"),
    "table_backfill": ("glue-jobs", "table"),
    "bucket_backfill": ("glue-jobs", "bucket"),
}
# What a `dynamic "statement"`'s for_each switches on, as the spec decides it (ferry/deploy.py).
STATEMENT_SWITCHES: dict[str, Callable[[Any], bool]] = {
    'var.read_mode == "scan"': lambda spec: spec.backfill.read == "scan",
    'var.read_mode == "export"': lambda spec: spec.backfill.read == "export",
    'var.write_mode == "batch"': lambda spec: spec.backfill.write == "batch",
    'var.write_mode == "import"': lambda spec: spec.backfill.write == "import",
    # backfill.insert_mode: PartiQL INSERTs into insert-only targets (not put), the probe in the state table (auto)
    'length(local.insert_only_target_arns) > 0 && var.insert_mode != "put"': lambda spec: (
        any(not t.replay for t in spec.tables) and spec.backfill.insert_mode != "put"
    ),
    'length(local.insert_only_target_arns) > 0 && var.insert_mode == "auto"': lambda spec: (
        any(not t.replay for t in spec.tables) and spec.backfill.insert_mode == "auto"
    ),
    "var.hold_bucket_events ?": lambda spec: bool(spec.buckets) and all(b.replay for b in spec.buckets),
    # the release of a replay copy counts the changes held in the stream
    "length(local.replay_source_arns) > 0": lambda spec: any(t.replay for t in spec.tables),
    "length(local.assumable_role_arns) > 0": lambda spec: bool(spec.source_role_arn or spec.target_role_arn),
}
ROLES = {
    "source_role_arn": "arn:aws:iam::111111111111:role/ferry-source",
    "target_role_arn": "arn:aws:iam::222222222222:role/ferry-target",
}
# Every copy path and protocol of both jobs: scan + batch writes, export + batch writes, export + import;
# held (replay) and insert-only buckets; with and without cross-account roles; each insert_mode of an
# insert-only table (auto, the default: INSERTs and the probe; partiql: INSERTs; put: neither) and
# partiql under replay (nothing: replay writes BatchWriteItem).
SPEC_VARIANTS = {
    "replay-scan-batch": {"backfill": {}, "protocol": "replay", **ROLES},
    "replay-scan-batch-partiql": {"backfill": {"insert_mode": "partiql"}, "protocol": "replay"},
    "insert-only-export-batch": {"backfill": {"read": "export"}, "protocol": "insert-only"},
    "insert-only-scan-batch-partiql": {"backfill": {"insert_mode": "partiql"}, "protocol": "insert-only", **ROLES},
    "insert-only-scan-batch-put": {"backfill": {"insert_mode": "put"}, "protocol": "insert-only"},
    "replay-export-import": {"backfill": {"read": "export", "write": "import"}, "protocol": "replay", **ROLES},
}


def variant_spec(name: str) -> Any:
    from ferry.spec import parse_spec

    variant = dict(SPEC_VARIANTS[name])
    protocol, backfill = variant.pop("protocol"), variant.pop("backfill")
    return parse_spec(
        {
            "region": "us-east-1",
            "tables": [{"source": "orders", "target": "orders-v2", "protocol": protocol}],
            "buckets": [{"source": "media", "target": "media-v2", "protocol": protocol}],
            "backfill": backfill,
            **variant,
        }
    )


def terraform_statements(module: str, document: str) -> list[tuple[str | None, dict[str, Any]]]:
    """(the for_each of its `dynamic "statement"` or None, the statement) of every statement."""
    (f,) = [f for f in in_dir(MODULES / module) if f.name.endswith("/main.tf")]
    (body,) = [b for _, name, b in invariants.blocks(f, "data", "aws_iam_policy_document") if name == document]
    out: list[tuple[str | None, dict[str, Any]]] = [(None, st) for st in body.get("statement", [])]
    for dynamic in body.get("dynamic", []):
        if "statement" in dynamic:
            out += [(str(dynamic["statement"]["for_each"]), st) for st in dynamic["statement"].get("content", [])]
    return out


def switched_on(for_each: str | None, spec: Any) -> bool:
    if for_each is None:
        return True
    switches = [check for text, check in STATEMENT_SWITCHES.items() if text in for_each]
    assert len(switches) == 1, f"no known switch (STATEMENT_SWITCHES) in the for_each {for_each}"
    return switches[0](spec)


def data_statement(actions: list[str], conditions: list[tuple[str, str]]) -> tuple[tuple[str, ...], tuple]:
    return tuple(sorted(actions)), tuple(sorted(conditions))


def terraform_data_statements(role: str, spec: Any) -> dict[str, tuple[tuple[str, ...], tuple]]:
    """Sid -> (actions, (condition test, key) pairs) of the data-plane statements Terraform grants ``spec``."""
    out = {}
    for for_each, statement in terraform_statements(*TERRAFORM_DOCUMENTS[role]):
        actions = list(statement.get("actions", []))
        if not switched_on(for_each, spec) or not any(a.startswith(DATA_PLANE) for a in actions):
            continue
        if any(a.startswith("sts:") for a in actions):
            continue  # the assumed roles: compared as actions below (the two paths name the statement apart)
        conditions = [(c["test"], c["variable"]) for c in statement.get("condition", [])]
        out[statement["sid"]] = data_statement(actions, conditions)
    return out


def quick_path_data_statements(document: dict[str, Any]) -> dict[str, tuple[tuple[str, ...], tuple]]:
    out = {}
    for statement in document["Statement"]:
        actions = statement["Action"]
        if not any(a.startswith(DATA_PLANE) for a in actions) or any(a.startswith("sts:") for a in actions):
            continue
        conditions = [(test, key) for test, keys in statement.get("Condition", {}).items() for key in keys]
        out[statement["Sid"]] = data_statement(actions, conditions)
    return out


@pytest.mark.parametrize("variant", sorted(SPEC_VARIANTS))
@pytest.mark.parametrize("role", sorted(TERRAFORM_DOCUMENTS))
def test_terraform_and_the_quick_path_grant_the_same_data_statements(role: str, variant: str) -> None:
    """Statement by statement (Sid, actions, condition keys): what Terraform grants a spec — its static
    statements and the dynamic ones that spec switches on — is what ferry/deploy.py grants it."""
    from ferry.deploy import Arns, policy_documents

    spec = variant_spec(variant)
    document = policy_documents(spec, "dev", Arns("us-east-1", "123456789012"), artifacts_bucket="artifacts")[role]
    quick = quick_path_data_statements(document)
    terraform = terraform_data_statements(role, spec)
    assert terraform == quick, f"{role} ({variant}): Terraform {terraform}\nferry/deploy.py {quick}"
    quick_actions = {a for st in document["Statement"] for a in st["Action"] if a.startswith(DATA_PLANE)}
    terraform_actions = {
        a
        for for_each, st in terraform_statements(*TERRAFORM_DOCUMENTS[role])
        if switched_on(for_each, spec)
        for a in st.get("actions", [])
        if a.startswith(DATA_PLANE)
    }
    assert terraform_actions == quick_actions, f"{role} ({variant})"


def test_every_data_statement_of_terraform_is_granted_by_some_spec() -> None:
    """Negative control of the switches: no Terraform statement is dead (switched on by no spec variant)."""
    for role, (module, document) in TERRAFORM_DOCUMENTS.items():
        for for_each, statement in terraform_statements(module, document):
            assert any(switched_on(for_each, variant_spec(v)) for v in SPEC_VARIANTS), (role, statement.get("sid"))


def test_the_statement_comparison_notices_a_missing_action() -> None:
    """Negative control: one action taken out of a Terraform statement is a difference."""
    spec = variant_spec("replay-export-import")
    terraform = terraform_data_statements("table_backfill", spec)
    actions, conditions = terraform["ImportTargets"]
    terraform["ImportTargets"] = (tuple(a for a in actions if a != "dynamodb:DescribeImport"), conditions)
    from ferry.deploy import Arns, policy_documents

    document = policy_documents(spec, "dev", Arns("us-east-1", "123456789012"), artifacts_bucket="artifacts")
    assert terraform != quick_path_data_statements(document["table_backfill"])


# --- replay: held consumers (docs/adr/0002, decision 7) ---------------------------------------------


def module_main(module: str) -> Any:
    (f,) = [f for f in in_dir(MODULES / module) if f.name.endswith("/main.tf")]
    return f


def resource(module: str, type_: str, name: str = "this") -> dict[str, Any]:
    (body,) = [b for _, n, b in invariants.blocks(module_main(module), "resource", type_) if n == name]
    return body


def module_call(name: str) -> dict[str, Any]:
    return {n: body for f in in_dir(COMPOSITION) for n, body in invariants.named(f, "module")}[name]


def test_terraform_creates_stream_mappings_of_insert_only_tables_only() -> None:
    """A replay table's stream mapping is created by its release (at TRIM_HORIZON, no record age):
    Terraform creates none for it, so a later apply cannot touch the one the release made. Reverse
    replication (reverse = true) maps every new table."""
    mapping = resource("table-stream", "aws_lambda_event_source_mapping")
    assert mapping["for_each"] == "${local.mapped_tables}"
    (local_values,) = module_main("table-stream").doc["locals"]
    assert local_values["insert_only_tables"] == (
        '${{for source, t in var.tables : source => t if t.protocol == "insert-only"}}'
    )
    assert local_values["mapped_tables"] == "${var.reverse ? var.tables : local.insert_only_tables}"
    assert "protocol = t.protocol" in module_call("table_stream")["tables"], "the composition must pass each protocol"
    # the table_stream role may still read every table's stream: the mapping the release creates polls with it
    policy = {st["sid"]: st for _, st in terraform_statements("table-stream", "this")}
    assert policy["ReadSourceStreams"]["resources"] == "${[for t in var.tables : t.source_stream_arn]}"


def test_partiql_inserts_are_granted_on_insert_only_targets_and_the_state_table_only() -> None:
    """backfill.insert_mode: the table job's PartiQL INSERTs reach only the insert-only tables' targets
    (a replay table is written with BatchWriteItem) and, for auto's probe, the state table; the composition
    passes each table's protocol and `ferry tfvars` the mode."""
    (local_values,) = module_main("glue-jobs").doc["locals"]
    assert local_values["insert_only_target_arns"] == (
        '${[for t in var.tables : t.target_arn if t.protocol == "insert-only"]}'
    )
    dynamic = {st["sid"]: (for_each, st) for for_each, st in terraform_statements("glue-jobs", "table")}
    inserts, probe = dynamic["InsertTargetItems"], dynamic["ProbeInsertMode"]
    assert inserts[0] == (
        '${length(local.insert_only_target_arns) > 0 && var.insert_mode != "put" ? [local.insert_only_target_arns] : []}'
    )
    assert (inserts[1]["actions"], inserts[1]["resources"]) == (["dynamodb:PartiQLInsert"], "${statement.value}")
    assert probe[0] == (
        '${length(local.insert_only_target_arns) > 0 && var.insert_mode == "auto" ? [var.state_table_arn] : []}'
    )
    assert (probe[1]["actions"], probe[1]["resources"]) == (["dynamodb:PartiQLInsert"], ["${statement.value}"])
    # the probe deletes its item afterwards: the state table's DeleteItem is granted whatever the mode
    (state,) = [st for for_each, st in terraform_statements("glue-jobs", "table") if st["sid"] == "ReadWriteState"]
    assert "dynamodb:DeleteItem" in state["actions"] and state["resources"] == ["${var.state_table_arn}"]
    call = module_call("glue_jobs")
    assert "protocol = t.protocol" in call["tables"], "the composition must pass each protocol"
    assert call["insert_mode"] == "${var.backfill.insert_mode}"
    declared = declared_variables(MODULES / "glue-jobs")
    assert declared["insert_mode"]["default"] == "auto"
    from ferry.deploy import backfill_variables
    from ferry.spec import INSERT_MODES, parse_spec

    for mode in INSERT_MODES:
        spec = parse_spec(
            {
                "region": "eu-west-1",
                "tables": [{"source": "orders", "target": "orders-v2"}],
                "backfill": {"insert_mode": mode},
            }
        )
        assert backfill_variables(spec, "123456789012")["insert_mode"] == mode
    # the composition's validation accepts exactly the modes ferry's spec does
    modes = ", ".join(f'"{mode}"' for mode in INSERT_MODES)
    conditions = [str(v["condition"]) for v in declared_variables(COMPOSITION)["backfill"]["validation"]]
    assert f"${{contains([{modes}], var.backfill.insert_mode)}}" in conditions


def test_the_events_queue_mapping_is_created_disabled_while_held_and_then_left_to_ferry() -> None:
    mapping = resource("bucket-events", "aws_lambda_event_source_mapping")
    assert mapping["enabled"] == "${!var.hold_until_release}"
    (lifecycle,) = mapping["lifecycle"]
    assert lifecycle["ignore_changes"] == ["enabled"], "a later apply must not disable what `ferry release` enabled"
    assert module_call("bucket_events")["hold_until_release"] == "${var.bucket_events.hold_until_release}"
    from ferry.deploy import terraform_variables
    from ferry.spec import parse_spec

    def held(protocol: str) -> bool:
        spec = parse_spec(
            {"region": "us-east-1", "buckets": [{"source": "media", "target": "media-v2", "protocol": protocol}]}
        )
        return bool(
            terraform_variables(spec, "dev", [], [], account="123456789012")["bucket_events"]["hold_until_release"]
        )

    assert held("replay") is True and held("insert-only") is False


def test_the_events_queue_keeps_events_14_days() -> None:
    from ferry.deploy import QUEUE_RETENTION_SECONDS, terraform_variables
    from ferry.spec import parse_spec

    queue = resource("bucket-events", "aws_sqs_queue")
    assert queue["message_retention_seconds"] == "${var.message_retention_seconds}"
    declared = declared_variables(MODULES / "bucket-events")["message_retention_seconds"]
    assert declared["default"] == invariants.DEAD_LETTER_RETENTION == QUEUE_RETENTION_SECONDS
    assert module_call("bucket_events")["message_retention_seconds"] == "${var.bucket_events.message_retention_seconds}"
    spec = parse_spec({"region": "us-east-1", "buckets": [{"source": "media", "target": "media-v2"}]})
    written = terraform_variables(spec, "dev", [], [], account="123456789012")["bucket_events"]
    assert written["message_retention_seconds"] == 1209600


def test_the_export_bucket_exists_only_for_exports_and_expires_them_as_ferry_init_does() -> None:
    from ferry.deploy import backfill_variables
    from ferry.spec import parse_spec
    from ferry.tables.export import EXPORT_EXPIRY_DAYS, EXPORT_PREFIX

    call = module_call("export_bucket")
    assert call["count"] == "${var.backfill.create_export_bucket ? 1 : 0}"
    assert (call["prefix"], call["expiry_days"]) == (
        "${var.backfill.export_prefix}",
        "${var.backfill.export_expiry_days}",
    )
    lifecycle = resource("export-bucket", "aws_s3_bucket_lifecycle_configuration")
    expire = next(rule for rule in lifecycle["rule"] if rule["id"] == "ferry-expire-exports")
    assert expire["filter"] == [{"prefix": "${var.prefix}/"}] and expire["expiration"] == [
        {"days": "${var.expiry_days}"}
    ]

    def written(**backfill: Any) -> dict[str, Any]:
        spec = parse_spec(
            {"region": "eu-west-1", "tables": [{"source": "orders", "target": "orders-v2"}], "backfill": backfill}
        )
        return backfill_variables(spec, "123456789012")

    created = written(read="export")
    assert created["export_bucket"] == "ferry-exports-123456789012-eu-west-1" and created["create_export_bucket"]
    assert (
        (created["export_prefix"], created["export_expiry_days"])
        == (EXPORT_PREFIX, EXPORT_EXPIRY_DAYS)
        == (
            "ferry-exports",
            7,
        )
    )
    named = written(read="export", export_bucket="my-exports")
    assert (named["export_bucket"], named["create_export_bucket"]) == ("my-exports", False)
    scan = written()
    assert (scan["export_bucket"], scan["create_export_bucket"]) == ("", False)


# --- reverse replication (reverse = true, docs/adr/0009) ----------------------------------------------


@pytest.mark.parametrize("module", ["table-stream", "bucket-events"])
def test_every_mapping_leaves_enabled_to_ferry(module: str) -> None:
    """`ferry cutover` disables the forward mappings and `ferry rollback` the reverse ones through the API:
    a later apply must not enable them again."""
    for _, name, body in invariants.blocks(module_main(module), "resource", "aws_lambda_event_source_mapping"):
        (lifecycle,) = body["lifecycle"]
        assert "enabled" in lifecycle["ignore_changes"], f"{module}: aws_lambda_event_source_mapping.{name}"


def test_the_new_tables_streams_are_left_to_ferry_reverse() -> None:
    """`ferry reverse` enables a target's stream through the API; an apply must not disable it."""
    (lifecycle,) = resource("target-table", "aws_dynamodb_table")["lifecycle"]
    assert {"stream_enabled", "stream_view_type"} <= set(lifecycle["ignore_changes"])


def test_reverse_replication_is_the_forward_modules_with_the_spec_reversed() -> None:
    """What ferry/deploy.py derives from ferry.twoway.reverse_spec, the composition passes to the second
    instance of each module: names, handlers, queues, never held, TRIM_HORIZON, the roles swapped, and the
    new tables' streams read, the old tables written."""
    from ferry.deploy import (
        BUCKET_REVERSE_FUNCTION,
        STREAM_REVERSE_FUNCTION,
        function_name,
        reverse_bucket_events_settings,
        reverse_failure_queue_name,
        reverse_stream_mapping_settings,
    )
    from ferry.spec import parse_spec

    table, bucket = module_call("table_stream_reverse"), module_call("bucket_events_reverse")
    for call in (table, bucket):
        assert call["reverse"] is True or call["reverse"] == "${true}"
        assert call["count"].startswith("${var.reverse && length(")
        assert (call["source_role_arn"], call["target_role_arn"]) == (
            "${var.target_role_arn}",
            "${var.source_role_arn}",
        )
    assert table["function_name"] == "${local.name}-" + STREAM_REVERSE_FUNCTION
    assert bucket["function_name"] == "${local.name}-" + BUCKET_REVERSE_FUNCTION
    assert function_name("dev", STREAM_REVERSE_FUNCTION) == "ferry-dev-table_stream_reverse"
    assert (table["handler"], bucket["handler"]) == ("app.table_stream_reverse", "app.bucket_events_reverse")
    app = (ROOT / "chalice_app" / "app.py").read_text()
    assert 'name="table_stream_reverse"' in app and 'name="bucket_events_reverse"' in app
    # the new table's stream, the old table written
    tables = table["tables"]
    assert "for source, t in local.tables : t.target =>" in tables
    assert "source_stream_arn = t.target_stream_arn" in tables and "target_arn = t.source_arn" in tables
    assert "source = b.target" in bucket["buckets"] and "target = b.source" in bucket["buckets"]
    assert "manage_source_notifications = false" in bucket["buckets"]
    # the queues and the mapping settings as ferry/deploy.py derives them from the reversed spec
    spec = parse_spec(
        {
            "region": "us-east-1",
            "tables": [{"source": "orders", "target": "orders-v2", "protocol": "insert-only"}],
            "buckets": [{"source": "media", "target": "media-v2"}],
            "replication": {"starting_position": "LATEST"},
        }
    )
    assert table["failure_queue_name"] == "${var.stream_failure_queue_name}-reverse"
    assert reverse_failure_queue_name(spec) == spec.replication.on_failure_queue + "-reverse"
    assert bucket["queue_name"] == "${var.bucket_events.queue_name}-reverse"
    assert reverse_bucket_events_settings(spec).queue_name == spec.s3.events_queue + "-reverse"
    assert bucket["hold_until_release"] is False or bucket["hold_until_release"] == "${false}"
    assert reverse_bucket_events_settings(spec).hold_until_release is False
    assert table["stream_mapping"] == '${merge(var.stream_mapping, {starting_position = "TRIM_HORIZON"})}'
    assert reverse_stream_mapping_settings(spec).starting_position == "TRIM_HORIZON"
    # every other mapping setting is the forward one (var.stream_mapping, what `ferry tfvars` writes)
    assert bucket["rule_name_prefix"] == "${local.name}-reverse"


def test_a_reverse_mapping_needs_the_new_table_s_stream_first() -> None:
    (lifecycle,) = resource("table-stream", "aws_lambda_event_source_mapping")["lifecycle"]
    (precondition,) = lifecycle["precondition"]
    assert precondition["condition"] == '${each.value.source_stream_arn != ""}'
    assert "ferry reverse --stage" in precondition["error_message"]
