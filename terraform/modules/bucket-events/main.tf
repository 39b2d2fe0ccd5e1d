# Live replication of buckets: S3 (EventBridge enabled on each source) -> one EventBridge rule per
# source bucket -> the events queue (+ dead-letter queue) -> the bucket_events Lambda
# (chalice_app/app.py: bucket_events) through an SQS event-source mapping with partial batch
# responses. The handler reconciles each key from the source's current state, so duplicated,
# reordered or stale events are harmless.
#
# With reverse = true the same module deploys reverse replication (chalice_app/app.py:
# bucket_events_reverse, docs/adr/0009): var.buckets then maps each NEW bucket (EventBridge enabled on
# it by `ferry reverse`) to its old bucket, into the queue <events_queue>-reverse, never held.

data "aws_partition" "current" {}

locals {
  partition           = data.aws_partition.current.partition
  assumable_role_arns = compact([var.source_role_arn, var.target_role_arn])

  # The object events ferry replicates (ferry.buckets.setup.EVENT_DETAIL_TYPES).
  detail_types = ["Object Created", "Object Deleted", "Object Tags Added", "Object Tags Deleted"]

  rule_names = {
    for source, b in var.buckets : source => (
      length("${var.rule_name_prefix}-${source}") <= 64
      ? "${var.rule_name_prefix}-${source}"
      : "${substr("${var.rule_name_prefix}-${source}", 0, 55)}-${substr(sha256(source), 0, 8)}"
    )
  }

  # The same pattern as ferry.buckets.setup.event_pattern: the bucket, and under a prefix the
  # prefix as given, percent-encoded with "/" kept, and form-encoded (whether EventBridge keys are
  # encoded is not something to bet data on; a wider match only costs a few extra events).
  event_patterns = {
    for source, b in var.buckets : source => (
      b.prefix == ""
      ? jsonencode({
        source        = ["aws.s3"]
        "detail-type" = local.detail_types
        detail        = { bucket = { name = [b.source] } }
      })
      : jsonencode({
        source        = ["aws.s3"]
        "detail-type" = local.detail_types
        detail = {
          bucket = { name = [b.source] }
          object = {
            key = [
              for form in distinct([
                b.prefix,
                replace(replace(urlencode(b.prefix), "%2F", "/"), "+", "%20"),
                urlencode(b.prefix),
              ]) : { prefix = form }
            ]
          }
        }
      })
    )
  }

  source_bucket_arns = [for b in var.buckets : "arn:${local.partition}:s3:::${b.source}"]
  target_bucket_arns = [for b in var.buckets : "arn:${local.partition}:s3:::${b.target}"]
  source_object_arns = [for b in var.buckets : "arn:${local.partition}:s3:::${b.source}/${b.prefix}*"]
  target_object_arns = [for b in var.buckets : "arn:${local.partition}:s3:::${b.target}/${b.prefix}*"]
}

# --- queues ----------------------------------------------------------------------------------

# The dead-letter queue of the events queue (after max_receive_count receives) and of the rules'
# deliveries. It IS a dead-letter destination, so it has no redrive policy of its own; it keeps
# messages for the SQS maximum of 14 days for `ferry redrive`.
resource "aws_sqs_queue" "dlq" {
  name                              = "${var.queue_name}-dlq"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = var.tags
}

# The events queue keeps an event 14 days (message_retention_seconds, from ferry/deploy.py): a replay
# copy holds its buckets' events here until the release. SQS keeps a message's original enqueue time
# when it moves to the dead-letter queue, so a message that reaches it after a long hold has only the
# rest of its 14 days there.
resource "aws_sqs_queue" "this" {
  name                              = var.queue_name
  visibility_timeout_seconds        = var.visibility_timeout_seconds
  message_retention_seconds         = var.message_retention_seconds
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
  tags = var.tags
}

# Only the events queue may redrive into the dead-letter queue.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.this.arn]
  })
}

data "aws_iam_policy_document" "queue" {
  statement {
    sid       = "EventBridgeRulesSend"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [for rule in aws_cloudwatch_event_rule.this : rule.arn]
    }
  }
}

data "aws_iam_policy_document" "dlq" {
  # EventBridge sends an event it could not deliver to the queue to the rule's dead-letter queue.
  statement {
    sid       = "EventBridgeRulesDeadLetter"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [for rule in aws_cloudwatch_event_rule.this : rule.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "this" {
  queue_url = aws_sqs_queue.this.id
  policy    = data.aws_iam_policy_document.queue.json
}

resource "aws_sqs_queue_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  policy    = data.aws_iam_policy_document.dlq.json
}

# --- EventBridge -----------------------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "this" {
  for_each = var.buckets

  name          = local.rule_names[each.key]
  description   = "ferry: object events of s3://${each.value.source}/${each.value.prefix} for ${each.value.target}"
  event_pattern = local.event_patterns[each.key]
  tags          = var.tags
}

resource "aws_cloudwatch_event_target" "this" {
  for_each = var.buckets

  rule      = aws_cloudwatch_event_rule.this[each.key].name
  target_id = "ferry-events-queue"
  arn       = aws_sqs_queue.this.arn

  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.dlq.arn
  }

  depends_on = [aws_sqs_queue_policy.this, aws_sqs_queue_policy.dlq]
}

# OPTIONAL, and only for buckets whose manage_source_notifications is true: turning EventBridge
# on through aws_s3_bucket_notification REPLACES the bucket's whole notification configuration
# (every queue, topic and Lambda notification someone else configured would be deleted, and
# Terraform would remove them again on every apply). The default path is
# `ferry init --sources-only`, which merges EventBridgeConfiguration into the existing
# configuration through the API and keeps everything else. Set manage_source_notifications only
# for a source bucket that has no other notification configuration.
resource "aws_s3_bucket_notification" "source" {
  for_each = { for source, b in var.buckets : source => b if b.manage_source_notifications }

  bucket      = each.value.source
  eventbridge = true
}

# --- function --------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "LambdaAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = var.function_name
  description        = var.reverse ? "ferry bucket_events_reverse: consumes the reverse events queue, reconciles each key from the new bucket to the old one" : "ferry bucket_events: consumes the events queue, reconciles each key from source to target"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "this" {
  # What the SQS event-source mapping needs (it runs with this role); deleting a message is how a
  # batch's successful records are acknowledged.
  statement {
    sid    = "ConsumeEventsQueue"
    effect = "Allow"
    actions = [
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:ReceiveMessage",
    ]
    resources = [aws_sqs_queue.this.arn]
  }

  # The handler's lag samples (ferry.runlog, one PutItem per invocation and source): only a sample's
  # attributes may be written, so the function cannot write a phase or a checkpoint.
  statement {
    sid       = "RecordLagSamples"
    effect    = "Allow"
    actions   = ["dynamodb:PutItem"]
    resources = [var.state_table_arn]
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "dynamodb:Attributes"
      values   = ["pk", "sk", "at", "records", "p50", "p99", "max", "failed"]
    }
  }

  # The two-way judge (ferry.twoway): the switch's steps, the write journal, the sequence marks, the
  # conflicts and the sync marks. dynamodb:LeadingKeys confines the three actions, which always name one
  # key, to items whose partition key has one of those prefixes.
  statement {
    sid    = "JudgeTwoWay"
    effect = "Allow"
    actions = [
      "dynamodb:DeleteItem",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
    ]
    resources = [var.state_table_arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["twoway#*", "journal#*", "seen#*", "conflict#*", "sync#*"]
    }
  }

  # HeadBucket/ListObjectsV2, and a 404 rather than a 403 when HEAD finds no key.
  statement {
    sid       = "ListBuckets"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = concat(local.source_bucket_arns, local.target_bucket_arns)
  }

  # reconcile_key reads the source: HeadObject (also per part), GetObjectTagging, copy source.
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

  # reconcile_key writes only the target: CopyObject / UploadPartCopy with explicit tags, delete
  # of a key the source no longer has, abort of a failed multipart copy; HEAD + tags to compare.
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

  # The queue and created targets are encrypted with this key.
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
    sid    = "WriteLogs"
    effect = "Allow"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = [
      aws_cloudwatch_log_group.this.arn,
      "${aws_cloudwatch_log_group.this.arn}:*",
    ]
  }

  # X-Ray trace segments have no resource-level permissions: "*" is the only resource AWS accepts.
  statement {
    sid    = "WriteTraces"
    effect = "Allow"
    actions = [
      "xray:PutTelemetryRecords",
      "xray:PutTraceSegments",
    ]
    resources = ["*"]
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

resource "aws_iam_role_policy" "this" {
  name   = "ferry-bucket-events"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Invoked only by the SQS event-source mapping (never asynchronously); failed messages go to the queue's own dead-letter queue through its redrive policy.
  #checkov:skip=CKV_AWS_117:Talks only to AWS APIs (S3, SQS, STS) over TLS; no private resources to reach, so no VPC.
  #checkov:skip=CKV_AWS_272:Code signing is not used: the package is built from this repository by `make deploy` and uploaded by Terraform with its hash (source_code_hash).
  function_name                  = var.function_name
  description                    = var.reverse ? "ferry: reconciles the keys named by the new buckets' object events back to the old buckets" : "ferry: reconciles the keys named by S3 object events from source to target bucket"
  role                           = aws_iam_role.this.arn
  handler                        = var.handler
  runtime                        = var.runtime
  filename                       = var.lambda_package
  source_code_hash               = filebase64sha256(var.lambda_package)
  memory_size                    = var.memory_size
  timeout                        = var.timeout
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = {
      FERRY_SPEC              = var.spec_json
      POWERTOOLS_SERVICE_NAME = var.reverse ? "ferry-bucket-events-reverse" : "ferry-bucket-events"
      POWERTOOLS_LOG_LEVEL    = var.log_level
    }
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text" # Powertools writes JSON lines itself
    log_group  = aws_cloudwatch_log_group.this.name
  }

  tags = var.tags

  lifecycle {
    # A message still being processed must not become visible again (and be processed twice
    # concurrently): the function must finish before the queue's visibility timeout.
    precondition {
      condition     = var.timeout < var.visibility_timeout_seconds
      error_message = "bucket_events: the function timeout (lambda_timeout = ${var.timeout}s) must be below the events queue's visibility timeout (bucket_events.visibility_timeout_seconds = ${var.visibility_timeout_seconds}s)."
    }
  }

  depends_on = [aws_iam_role_policy.this, aws_cloudwatch_log_group.this]
}

# Replay buckets (hold_until_release): the mapping is created disabled, so the events of the copy
# wait in the queue (14 days); the release (the bucket job at the end of its copy, or `ferry release
# --stage`) enables it once no bucket is held. An SQS mapping only polls the queue, so enabling it
# later loses nothing. `enabled` is then ferry's, not Terraform's: ignore_changes keeps a later apply
# from disabling the mapping the release enabled, or enabling one `ferry cutover` (forward) or
# `ferry rollback` (reverse) disabled (for insert-only buckets too: a mapping disabled by hand stays
# so until enabled by hand).
resource "aws_lambda_event_source_mapping" "this" {
  event_source_arn                   = aws_sqs_queue.this.arn
  function_name                      = aws_lambda_function.this.arn
  enabled                            = !var.hold_until_release
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  lifecycle {
    ignore_changes = [enabled]

    precondition {
      condition     = var.batch_size <= 10 || var.maximum_batching_window_in_seconds >= 1
      error_message = "bucket_events: a batch_size above 10 needs maximum_batching_window_in_seconds of at least 1."
    }
  }

  # The mapping starts receiving as soon as it exists: the role must already allow it.
  depends_on = [aws_iam_role_policy.this]
}
