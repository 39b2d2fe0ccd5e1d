# The two backfill jobs (glue_jobs/table_backfill.py and bucket_backfill.py), one role each, and
# the security configuration that encrypts their S3 writes, logs and bookmarks with ferry's key.
# Both jobs get the whole spec as one default argument, --spec_json (the compact JSON the Lambdas
# get in FERRY_SPEC: region, state table, roles, every mapping's settings). `ferry backfill
# --engine glue --job-name <prefix>-table-backfill` starts one run per table (per bucket for the
# bucket job) and adds --source, the source table or bucket that run copies.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id

  table_job_name    = "${var.name_prefix}-table-backfill"
  bucket_job_name   = "${var.name_prefix}-bucket-backfill"
  create_table_job  = length(var.tables) > 0
  create_bucket_job = length(var.buckets) > 0

  security_configuration_name = var.name_prefix
  assumable_role_arns         = compact([var.source_role_arn, var.target_role_arn])

  # Glue's own flags, the same for both jobs; each job adds --spec_json, each run --source.
  glue_arguments = {
    "--extra-py-files"                   = var.extra_py_files
    "--enable-metrics"                   = "true"
    "--enable-observability-metrics"     = "true"
    "--enable-continuous-cloudwatch-log" = "true"
    "--job-language"                     = "python"
    # ferry checkpoints every scan page in its state table; Glue bookmarks are not used.
    "--job-bookmark-option" = "job-bookmark-disable"
  }

  glue_log_groups_arn = "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/aws-glue/jobs/*"

  source_table_arns  = [for t in var.tables : t.source_arn]
  replay_source_arns = [for t in var.tables : t.source_arn if t.protocol == "replay"]
  target_table_arns  = [for t in var.tables : t.target_arn]
  # backfill.insert_mode: only an insert-only table may be written with PartiQL INSERTs.
  insert_only_target_arns = [for t in var.tables : t.target_arn if t.protocol == "insert-only"]

  # backfill.read: export: the bucket the exports go to, and the keys ferry's exports are under.
  export_bucket_arn  = var.export_bucket_name == null ? null : "arn:${local.partition}:s3:::${var.export_bucket_name}"
  export_objects_arn = var.export_bucket_name == null ? null : "arn:${local.partition}:s3:::${var.export_bucket_name}/${var.export_prefix}/*"

  # UpdateEventSourceMapping names the mapping, whose UUID exists only once it is created: every
  # mapping of the account and region, narrowed to ferry's function by the lambda:FunctionArn condition.
  event_source_mappings_arn = "arn:${local.partition}:lambda:${var.region}:${local.account_id}:event-source-mapping:*"

  source_bucket_arns = [for b in var.buckets : "arn:${local.partition}:s3:::${b.source}"]
  target_bucket_arns = [for b in var.buckets : "arn:${local.partition}:s3:::${b.target}"]
  # Only keys under the mapping's prefix are ever read or written (reconcile ignores the rest).
  source_object_arns = [for b in var.buckets : "arn:${local.partition}:s3:::${b.source}/${b.prefix}*"]
  target_object_arns = [for b in var.buckets : "arn:${local.partition}:s3:::${b.target}/${b.prefix}*"]

  # With a security configuration that encrypts CloudWatch Logs, Glue writes to these log groups;
  # created here so they have a retention and ferry's key.
  log_groups = merge(
    { continuous = "/aws-glue/jobs/logs-v2-${local.security_configuration_name}" },
    local.create_table_job ? {
      table_output = "/aws-glue/jobs/${local.security_configuration_name}-role/${local.table_job_name}/output"
      table_error  = "/aws-glue/jobs/${local.security_configuration_name}-role/${local.table_job_name}/error"
    } : {},
    local.create_bucket_job ? {
      bucket_output = "/aws-glue/jobs/${local.security_configuration_name}-role/${local.bucket_job_name}/output"
      bucket_error  = "/aws-glue/jobs/${local.security_configuration_name}-role/${local.bucket_job_name}/error"
    } : {},
  )
}

resource "aws_glue_security_configuration" "this" {
  name = local.security_configuration_name

  encryption_configuration {
    cloudwatch_encryption {
      cloudwatch_encryption_mode = "SSE-KMS"
      kms_key_arn                = var.kms_key_arn
    }

    job_bookmarks_encryption {
      job_bookmarks_encryption_mode = "CSE-KMS"
      kms_key_arn                   = var.kms_key_arn
    }

    s3_encryption {
      s3_encryption_mode = "SSE-KMS"
      kms_key_arn        = var.kms_key_arn
    }
  }
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.log_groups

  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# --- roles -----------------------------------------------------------------------------------

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "GlueAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["glue.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "table" {
  count = local.create_table_job ? 1 : 0

  name                 = local.table_job_name
  description          = "ferry table backfill (Glue): copies the source tables (scan or export, batch writes or import), records each copy in the state table, releases a replay copy"
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role" "bucket" {
  count = local.create_bucket_job ? 1 : 0

  name                 = local.bucket_job_name
  description          = "ferry bucket backfill (Glue): lists and reads the source buckets, copies server-side into the targets, releases held bucket events"
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "table" {
  count = local.create_table_job ? 1 : 0

  statement {
    sid       = "ReadArtifacts"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = var.artifact_object_arns
  }

  # inspect_tables, begin_copy and plan_backfill describe the source.
  statement {
    sid       = "DescribeSources"
    effect    = "Allow"
    actions   = ["dynamodb:DescribeTable"]
    resources = local.source_table_arns
  }

  # Capture records the stream's open shards; the release checks that every one is still listed.
  statement {
    sid       = "DescribeSourceStreams"
    effect    = "Allow"
    actions   = ["dynamodb:DescribeStream"]
    resources = [for arn in local.source_table_arns : "${arn}/stream/*"]
  }

  # The release of a replay copy counts the changes held in the stream (for `ferry status` and the
  # report's backlog); nothing else reads the stream then: its mapping is created by that release.
  dynamic "statement" {
    for_each = length(local.replay_source_arns) > 0 ? [local.replay_source_arns] : []
    content {
      sid       = "CountHeldChanges"
      effect    = "Allow"
      actions   = ["dynamodb:GetShardIterator", "dynamodb:GetRecords"]
      resources = [for arn in statement.value : "${arn}/stream/*"]
    }
  }

  statement {
    sid       = "DescribeTargets"
    effect    = "Allow"
    actions   = ["dynamodb:DescribeTable"]
    resources = local.target_table_arns
  }

  # backfill.read: scan: copy_segment scans its parallel-scan segment.
  dynamic "statement" {
    for_each = var.read_mode == "scan" ? [local.source_table_arns] : []
    content {
      sid       = "ScanSources"
      effect    = "Allow"
      actions   = ["dynamodb:Scan"]
      resources = statement.value
    }
  }

  # backfill.write: batch: BatchWriteItem under replay, conditional PutItem (attribute_not_exists)
  # under insert-only, where a failed condition is a skip.
  dynamic "statement" {
    for_each = var.write_mode == "batch" ? [local.target_table_arns] : []
    content {
      sid    = "WriteTargetItems"
      effect = "Allow"
      actions = [
        "dynamodb:BatchWriteItem",
        "dynamodb:PutItem",
      ]
      resources = statement.value
    }
  }

  # backfill.insert_mode partiql, or auto where the probe chose it: an insert-only copy writes with
  # BatchExecuteStatement INSERTs, which AWS authorizes as dynamodb:PartiQLInsert (AWS: "IAM security
  # policies with PartiQL for DynamoDB"). Not under put, nor for a replay table (BatchWriteItem).
  dynamic "statement" {
    for_each = length(local.insert_only_target_arns) > 0 && var.insert_mode != "put" ? [local.insert_only_target_arns] : []
    content {
      sid       = "InsertTargetItems"
      effect    = "Allow"
      actions   = ["dynamodb:PartiQLInsert"]
      resources = statement.value
    }
  }

  # backfill.insert_mode auto: before an insert-only copy the driver INSERTs one fresh probe key twice
  # into the state table (the second must be refused), then deletes it (DeleteItem: ReadWriteState).
  dynamic "statement" {
    for_each = length(local.insert_only_target_arns) > 0 && var.insert_mode == "auto" ? [var.state_table_arn] : []
    content {
      sid       = "ProbeInsertMode"
      effect    = "Allow"
      actions   = ["dynamodb:PartiQLInsert"]
      resources = [statement.value]
    }
  }

  # backfill.read: export: the point-in-time recovery check and the export itself, which DynamoDB
  # writes with this role's rights (AWS: "Requesting a table export in DynamoDB").
  dynamic "statement" {
    for_each = var.read_mode == "export" ? [local.source_table_arns] : []
    content {
      sid    = "ExportSources"
      effect = "Allow"
      actions = [
        "dynamodb:DescribeContinuousBackups",
        "dynamodb:ExportTableToPointInTime",
      ]
      resources = statement.value
    }
  }

  dynamic "statement" {
    for_each = var.read_mode == "export" ? [local.source_table_arns] : []
    content {
      sid       = "DescribeExports"
      effect    = "Allow"
      actions   = ["dynamodb:DescribeExport"]
      resources = [for arn in statement.value : "${arn}/export/*"]
    }
  }

  dynamic "statement" {
    for_each = var.read_mode == "export" ? [local.export_objects_arn] : []
    content {
      sid    = "WriteExports"
      effect = "Allow"
      actions = [
        "s3:AbortMultipartUpload",
        "s3:PutObject",
        "s3:PutObjectAcl",
      ]
      resources = [statement.value]
    }
  }

  # The job lists and reads an export's manifests and data files; ImportTable reads them too, with
  # this role's rights.
  dynamic "statement" {
    for_each = var.read_mode == "export" ? [[local.export_bucket_arn, local.export_objects_arn]] : []
    content {
      sid    = "ReadExports"
      effect = "Allow"
      actions = [
        "s3:GetObject",
        "s3:ListBucket",
      ]
      resources = statement.value
    }
  }

  # backfill.write: import: ImportTable creates the target (AWS: "Requesting a table import in
  # DynamoDB" lists ImportTable and DescribeImport, not CreateTable), then gets the source's TTL.
  dynamic "statement" {
    for_each = var.write_mode == "import" ? [local.target_table_arns] : []
    content {
      sid    = "ImportTargets"
      effect = "Allow"
      actions = [
        "dynamodb:DescribeImport",
        "dynamodb:ImportTable",
      ]
      resources = concat(statement.value, [for arn in statement.value : "${arn}/import/*"])
    }
  }

  dynamic "statement" {
    for_each = var.write_mode == "import" ? [local.source_table_arns] : []
    content {
      sid       = "ReadSourceTtl"
      effect    = "Allow"
      actions   = ["dynamodb:DescribeTimeToLive"]
      resources = statement.value
    }
  }

  dynamic "statement" {
    for_each = var.write_mode == "import" ? [local.target_table_arns] : []
    content {
      sid       = "SetTargetTtl"
      effect    = "Allow"
      actions   = ["dynamodb:UpdateTimeToLive"]
      resources = statement.value
    }
  }

  # ImportTable logs the items it rejects under /aws-dynamodb/, with this role's rights.
  dynamic "statement" {
    for_each = var.write_mode == "import" ? ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/aws-dynamodb/*"] : []
    content {
      sid    = "WriteImportLogs"
      effect = "Allow"
      actions = [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:DescribeLogGroups",
        "logs:DescribeLogStreams",
        "logs:PutLogEvents",
        "logs:PutRetentionPolicy",
      ]
      resources = [statement.value, "${statement.value}:*"]
    }
  }

  # StateStore: phase, capture, copy run and per-segment checkpoints; a new copy clears the last
  # one's checkpoints (Query, DeleteItem).
  statement {
    sid    = "ReadWriteState"
    effect = "Allow"
    actions = [
      "dynamodb:DeleteItem",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
    ]
    resources = [var.state_table_arn]
  }

  # The release (replay) or the consumer an insert-only copy needs first: the stream mapping's
  # on-failure destination is this queue's ARN.
  statement {
    sid    = "FindFailureQueue"
    effect = "Allow"
    actions = [
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
    ]
    resources = [var.stream_failure_queue_arn]
  }

  # ListEventSourceMappings has no resource-level permissions or condition keys: "*" is the only
  # resource AWS accepts (AWS: "Resources and conditions for Lambda actions"); it reads configuration.
  statement {
    sid       = "ListMappings"
    effect    = "Allow"
    actions   = ["lambda:ListEventSourceMappings"]
    resources = ["*"]
  }

  # CreateEventSourceMapping authorizes on "*" only; the lambda:FunctionArn condition confines it to
  # the stage's table_stream function (the stream mapping the release creates).
  statement {
    sid       = "CreateOwnMapping"
    effect    = "Allow"
    actions   = ["lambda:CreateEventSourceMapping"]
    resources = ["*"]

    condition {
      test     = "ArnLike"
      variable = "lambda:FunctionArn"
      values   = [var.stream_function_arn, "${var.stream_function_arn}:*"]
    }
  }

  statement {
    sid    = "UseFerryKey"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
    ]
    resources = [var.kms_key_arn]
  }

  statement {
    sid    = "WriteEncryptedLogs"
    effect = "Allow"
    actions = [
      "logs:AssociateKmsKey",
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = [local.glue_log_groups_arn]
  }

  # PutMetricData has no resource-level permissions: "*" is the only resource AWS accepts; the
  # namespace condition limits it to Glue's job and observability metrics.
  statement {
    sid       = "PublishGlueMetrics"
    effect    = "Allow"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["Glue"]
    }
  }

  dynamic "statement" {
    for_each = length(local.assumable_role_arns) > 0 ? [local.assumable_role_arns] : []
    content {
      sid       = "AssumeCrossAccountRoles"
      effect    = "Allow"
      actions   = ["sts:AssumeRole"]
      resources = statement.value
    }
  }
}

data "aws_iam_policy_document" "bucket" {
  count = local.create_bucket_job ? 1 : 0

  statement {
    sid       = "ReadArtifacts"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = var.artifact_object_arns
  }

  # HeadBucket and ListObjectsV2 (and a 404 rather than a 403 for a missing key on HEAD).
  statement {
    sid       = "ListBuckets"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = concat(local.source_bucket_arns, local.target_bucket_arns)
  }

  # HeadObject (also per part), GetObjectTagging, and the copy source of CopyObject/UploadPartCopy.
  statement {
    sid    = "ReadSourceObjects"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:GetObjectTagging",
      "s3:GetObjectVersion",
    ]
    resources = local.source_object_arns
  }

  # reconcile_key: HEAD + tags of the target, CopyObject / multipart UploadPartCopy with explicit
  # tags (PutObjectTagging), delete of a key the source no longer has, abort of a failed upload.
  statement {
    sid    = "WriteTargetObjects"
    effect = "Allow"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:DeleteObject",
      "s3:GetObject",
      "s3:GetObjectTagging",
      "s3:PutObject",
      "s3:PutObjectTagging",
    ]
    resources = local.target_object_arns
  }

  # check_ready (inspect_buckets) reads each source's versioning and default encryption
  # (GetBucketVersioning, GetBucketEncryption).
  statement {
    sid    = "InspectSourceBuckets"
    effect = "Allow"
    actions = [
      "s3:GetBucketVersioning",
      "s3:GetEncryptionConfiguration",
    ]
    resources = local.source_bucket_arns
  }

  # The copy run, and a replay bucket's phase and capture (copy_refusal reads them first).
  statement {
    sid    = "ReadWriteState"
    effect = "Allow"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
    ]
    resources = [var.state_table_arn]
  }

  # Replay buckets (held): the release records the events queue's depth and needs its ARN.
  dynamic "statement" {
    for_each = var.hold_bucket_events ? [var.events_queue_arn] : []
    content {
      sid    = "FindEventsQueue"
      effect = "Allow"
      actions = [
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
      ]
      resources = [statement.value]
    }
  }

  # ListEventSourceMappings has no resource-level permissions or condition keys: "*" is the only
  # resource AWS accepts (AWS: "Resources and conditions for Lambda actions"); it reads configuration.
  dynamic "statement" {
    for_each = var.hold_bucket_events ? [var.bucket_function_arn] : []
    content {
      sid       = "ListMappings"
      effect    = "Allow"
      actions   = ["lambda:ListEventSourceMappings"]
      resources = ["*"]
    }
  }

  # CreateEventSourceMapping authorizes on "*" only; the condition confines it to the stage's
  # bucket_events function (the release creates the events queue's mapping if it is missing).
  dynamic "statement" {
    for_each = var.hold_bucket_events ? [var.bucket_function_arn] : []
    content {
      sid       = "CreateOwnMapping"
      effect    = "Allow"
      actions   = ["lambda:CreateEventSourceMapping"]
      resources = ["*"]

      condition {
        test     = "ArnLike"
        variable = "lambda:FunctionArn"
        values   = [statement.value, "${statement.value}:*"]
      }
    }
  }

  # The release enables the events queue's mapping, created disabled while the buckets are held.
  dynamic "statement" {
    for_each = var.hold_bucket_events ? [var.bucket_function_arn] : []
    content {
      sid       = "EnableOwnMapping"
      effect    = "Allow"
      actions   = ["lambda:UpdateEventSourceMapping"]
      resources = [local.event_source_mappings_arn]

      condition {
        test     = "ArnLike"
        variable = "lambda:FunctionArn"
        values   = [statement.value, "${statement.value}:*"]
      }
    }
  }

  statement {
    sid    = "UseFerryKey"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
    ]
    resources = [var.kms_key_arn]
  }

  statement {
    sid    = "WriteEncryptedLogs"
    effect = "Allow"
    actions = [
      "logs:AssociateKmsKey",
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = [local.glue_log_groups_arn]
  }

  # PutMetricData has no resource-level permissions: "*" is the only resource AWS accepts; the
  # namespace condition limits it to Glue's job and observability metrics.
  statement {
    sid       = "PublishGlueMetrics"
    effect    = "Allow"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["Glue"]
    }
  }

  dynamic "statement" {
    for_each = length(local.assumable_role_arns) > 0 ? [local.assumable_role_arns] : []
    content {
      sid       = "AssumeCrossAccountRoles"
      effect    = "Allow"
      actions   = ["sts:AssumeRole"]
      resources = statement.value
    }
  }
}

resource "aws_iam_role_policy" "table" {
  count = local.create_table_job ? 1 : 0

  name   = "ferry-table-backfill"
  role   = aws_iam_role.table[0].id
  policy = data.aws_iam_policy_document.table[0].json
}

resource "aws_iam_role_policy" "bucket" {
  count = local.create_bucket_job ? 1 : 0

  name   = "ferry-bucket-backfill"
  role   = aws_iam_role.bucket[0].id
  policy = data.aws_iam_policy_document.bucket[0].json
}

# --- jobs ------------------------------------------------------------------------------------

resource "aws_glue_job" "table" {
  count = local.create_table_job ? 1 : 0

  name                   = local.table_job_name
  description            = "ferry: split-parallel copy of one DynamoDB table per run, replay or insert-only (glue_jobs/table_backfill.py)"
  role_arn               = aws_iam_role.table[0].arn
  glue_version           = var.glue_version
  worker_type            = var.worker_type
  number_of_workers      = var.number_of_workers
  timeout                = var.timeout_minutes
  max_retries            = 0
  security_configuration = aws_glue_security_configuration.this.name

  command {
    name            = "glueetl"
    script_location = var.table_script_location
    python_version  = "3"
  }

  default_arguments = merge(local.glue_arguments, {
    "--spec_json" = var.spec_json
  })

  # One concurrent run per table, so every table can backfill at the same time.
  execution_property {
    max_concurrent_runs = max(1, length(var.tables))
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.table, aws_cloudwatch_log_group.this]
}

resource "aws_glue_job" "bucket" {
  count = local.create_bucket_job ? 1 : 0

  name                   = local.bucket_job_name
  description            = "ferry: server-side copy of one S3 bucket (prefix) per run (glue_jobs/bucket_backfill.py)"
  role_arn               = aws_iam_role.bucket[0].arn
  glue_version           = var.glue_version
  worker_type            = var.worker_type
  number_of_workers      = var.number_of_workers
  timeout                = var.timeout_minutes
  max_retries            = 0
  security_configuration = aws_glue_security_configuration.this.name

  command {
    name            = "glueetl"
    script_location = var.bucket_script_location
    python_version  = "3"
  }

  default_arguments = merge(local.glue_arguments, {
    "--spec_json" = var.spec_json
  })

  # One concurrent run per bucket mapping.
  execution_property {
    max_concurrent_runs = max(1, length(var.buckets))
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.bucket, aws_cloudwatch_log_group.this]
}
