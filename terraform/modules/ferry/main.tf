# ferry's deployment, composed from the modules next to this one. The root (terraform/, the same
# for every stage) only configures the provider and the backend and calls this module.
#
# Not managed here, on purpose: the source tables (their streams are enabled with
# NEW_AND_OLD_IMAGES by `ferry init --sources-only`) and the source buckets (EventBridge is merged
# into their notification configuration by the same command, unless manage_source_notifications).

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  name       = "ferry-${var.stage}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  kms_key_arn = coalesce(var.kms_key_arn, one(module.kms[*].key_arn))

  # With target_role_arn the targets belong to that role's account.
  target_account_id = var.target_role_arn == null ? null : split(":", var.target_role_arn)[4]

  tables  = { for t in var.tables : t.source => t }
  buckets = { for b in var.buckets : b.source => b }

  # Only a point-in-time export (backfill.read: export) needs the export bucket; Terraform creates it
  # unless the spec names one (backfill.export_bucket), as `ferry init` does on the quick path.
  exports            = var.backfill.export_bucket != ""
  export_bucket_name = var.backfill.export_bucket

  artifact_files = {
    "glue/table_backfill.py"  = "${var.glue_scripts_dir}/table_backfill.py"
    "glue/bucket_backfill.py" = "${var.glue_scripts_dir}/bucket_backfill.py"
    "glue/ferry.zip"          = var.ferry_zip
  }
}

module "kms" {
  source = "../kms"
  count  = var.kms_key_arn == null ? 1 : 0

  name   = local.name
  region = var.region
  tags   = var.tags
}

module "state_table" {
  source = "../state-table"

  name        = var.state_table_name
  kms_key_arn = local.kms_key_arn
  tags        = var.tags
}

module "target_table" {
  source   = "../target-table"
  for_each = local.tables

  create                   = each.value.create_target
  name                     = each.value.target
  arn                      = each.value.target_arn
  hash_key                 = each.value.hash_key
  range_key                = each.value.range_key
  attributes               = each.value.attributes
  billing_mode             = each.value.billing_mode
  read_capacity            = each.value.read_capacity
  write_capacity           = each.value.write_capacity
  global_secondary_indexes = each.value.global_secondary_indexes
  local_secondary_indexes  = each.value.local_secondary_indexes
  ttl_attribute            = each.value.ttl_attribute
  kms_key_arn              = local.kms_key_arn
  tags                     = var.tags
}

module "target_bucket" {
  source   = "../target-bucket"
  for_each = local.buckets

  create      = each.value.create_target
  name        = each.value.target
  versioning  = each.value.versioning
  account_id  = local.target_account_id
  kms_key_arn = local.kms_key_arn
  tags        = var.tags
}

module "artifacts" {
  source = "../artifacts"

  name        = "${local.name}-artifacts-${local.account_id}"
  files       = local.artifact_files
  kms_key_arn = local.kms_key_arn
  tags        = var.tags
}

module "export_bucket" {
  source = "../export-bucket"
  count  = var.backfill.create_export_bucket ? 1 : 0

  name        = local.export_bucket_name
  prefix      = var.backfill.export_prefix
  expiry_days = var.backfill.export_expiry_days
  # Cross-account: the source role requests the export (DynamoDB writes it with that role's
  # rights), the target role the import (which reads it with that role's rights).
  writer_role_arns = compact([var.source_role_arn])
  reader_role_arns = compact([var.target_role_arn])
  kms_key_arn      = local.kms_key_arn
  tags             = var.tags
}

module "glue_jobs" {
  source = "../glue-jobs"

  name_prefix = local.name
  region      = var.region
  spec_json   = var.spec_json
  tables = {
    for source, t in local.tables : source => {
      source_arn = t.source_arn
      target_arn = module.target_table[source].arn
      protocol   = t.protocol
    }
  }
  buckets = {
    for source, b in local.buckets : source => {
      source = b.source
      target = module.target_bucket[source].name
      prefix = b.prefix
    }
  }
  state_table_arn    = module.state_table.arn
  read_mode          = var.backfill.read
  write_mode         = var.backfill.write
  insert_mode        = var.backfill.insert_mode
  export_bucket_name = local.exports ? local.export_bucket_name : null
  export_prefix      = var.backfill.export_prefix
  # The releases the jobs make: the stage's own functions' mappings, and the queues they look up.
  stream_function_arn      = one(module.table_stream[*].function_arn)
  stream_failure_queue_arn = one(module.table_stream[*].failure_queue_arn)
  bucket_function_arn      = one(module.bucket_events[*].function_arn)
  events_queue_arn         = one(module.bucket_events[*].queue_arn)
  hold_bucket_events       = var.bucket_events.hold_until_release
  table_script_location    = module.artifacts.object_uris["glue/table_backfill.py"]
  bucket_script_location   = module.artifacts.object_uris["glue/bucket_backfill.py"]
  extra_py_files           = module.artifacts.object_uris["glue/ferry.zip"]
  artifact_object_arns     = values(module.artifacts.object_arns)
  glue_version             = var.glue_version
  worker_type              = var.glue_worker_type
  number_of_workers        = var.glue_number_of_workers
  source_role_arn          = var.source_role_arn
  target_role_arn          = var.target_role_arn
  kms_key_arn              = local.kms_key_arn
  log_retention_days       = var.log_retention_days
  tags                     = var.tags
}

module "table_stream" {
  source = "../table-stream"
  count  = length(local.tables) > 0 ? 1 : 0

  function_name        = "${local.name}-table_stream" # Chalice naming, as ferry/deploy.py function_name
  region               = var.region
  lambda_package       = var.lambda_package
  memory_size          = var.lambda_memory_size
  timeout              = var.lambda_timeout
  reserved_concurrency = var.lambda_reserved_concurrency
  spec_json            = var.spec_json
  log_retention_days   = var.log_retention_days
  kms_key_arn          = local.kms_key_arn
  tables = {
    for source, t in local.tables : source => {
      source_stream_arn = t.source_stream_arn
      target_arn        = module.target_table[source].arn
      protocol          = t.protocol
    }
  }
  state_table_arn    = module.state_table.arn
  failure_queue_name = var.stream_failure_queue_name
  stream_mapping     = var.stream_mapping
  source_role_arn    = var.source_role_arn
  target_role_arn    = var.target_role_arn
  tags               = var.tags
}

module "bucket_events" {
  source = "../bucket-events"
  count  = length(local.buckets) > 0 ? 1 : 0

  function_name        = "${local.name}-bucket_events" # Chalice naming, as ferry/deploy.py function_name
  state_table_arn      = module.state_table.arn
  rule_name_prefix     = local.name
  region               = var.region
  lambda_package       = var.lambda_package
  memory_size          = var.lambda_memory_size
  timeout              = var.lambda_timeout
  reserved_concurrency = var.lambda_reserved_concurrency
  spec_json            = var.spec_json
  log_retention_days   = var.log_retention_days
  kms_key_arn          = local.kms_key_arn
  buckets = {
    for source, b in local.buckets : source => {
      source = b.source
      target = module.target_bucket[source].name
      prefix = b.prefix
      # A source bucket in another account (source_role_arn) is out of this account's reach.
      manage_source_notifications = b.manage_source_notifications && var.source_role_arn == null
    }
  }
  queue_name                         = var.bucket_events.queue_name
  max_receive_count                  = var.bucket_events.max_receive_count
  visibility_timeout_seconds         = var.bucket_events.visibility_timeout_seconds
  batch_size                         = var.bucket_events.batch_size
  maximum_batching_window_in_seconds = var.bucket_events.maximum_batching_window_in_seconds
  message_retention_seconds          = var.bucket_events.message_retention_seconds
  hold_until_release                 = var.bucket_events.hold_until_release
  source_role_arn                    = var.source_role_arn
  target_role_arn                    = var.target_role_arn
  tags                               = var.tags
}

# --- reverse replication (var.reverse, docs/adr/0009) -------------------------------------------
# The same two modules again, the spec reversed as ferry.twoway.reverse_spec reverses it: each new
# table's stream (enabled by `ferry reverse`) to its old table, each new bucket's events (EventBridge
# enabled on it by `ferry reverse`) through <queue>-reverse to its old bucket; the two roles swapped.
# Order: `ferry reverse --stage <stage>`, then `make deploy STAGE=<stage>` (`ferry tfvars` writes
# reverse = true and the new tables' stream ARNs from then on).

module "table_stream_reverse" {
  source = "../table-stream"
  count  = var.reverse && length(local.tables) > 0 ? 1 : 0

  reverse              = true
  function_name        = "${local.name}-table_stream_reverse" # Chalice naming, as ferry/deploy.py function_name
  handler              = "app.table_stream_reverse"
  region               = var.region
  lambda_package       = var.lambda_package
  memory_size          = var.lambda_memory_size
  timeout              = var.lambda_timeout
  reserved_concurrency = var.lambda_reserved_concurrency
  spec_json            = var.spec_json
  log_retention_days   = var.log_retention_days
  kms_key_arn          = local.kms_key_arn
  tables = {
    for source, t in local.tables : t.target => {
      source_stream_arn = t.target_stream_arn
      target_arn        = t.source_arn
      protocol          = t.protocol
    }
  }
  state_table_arn    = module.state_table.arn
  failure_queue_name = "${var.stream_failure_queue_name}-reverse"
  # the new table's stream exists only since `ferry reverse`: read it from its start
  stream_mapping  = merge(var.stream_mapping, { starting_position = "TRIM_HORIZON" })
  source_role_arn = var.target_role_arn
  target_role_arn = var.source_role_arn
  tags            = var.tags
}

module "bucket_events_reverse" {
  source = "../bucket-events"
  count  = var.reverse && length(local.buckets) > 0 ? 1 : 0

  reverse              = true
  function_name        = "${local.name}-bucket_events_reverse" # Chalice naming, as ferry/deploy.py function_name
  handler              = "app.bucket_events_reverse"
  state_table_arn      = module.state_table.arn
  rule_name_prefix     = "${local.name}-reverse"
  region               = var.region
  lambda_package       = var.lambda_package
  memory_size          = var.lambda_memory_size
  timeout              = var.lambda_timeout
  reserved_concurrency = var.lambda_reserved_concurrency
  spec_json            = var.spec_json
  log_retention_days   = var.log_retention_days
  kms_key_arn          = local.kms_key_arn
  buckets = {
    for source, b in local.buckets : b.target => {
      source = b.target
      target = b.source
      prefix = b.prefix
      # `ferry reverse` merges EventBridge into the new bucket's notifications through the API
      manage_source_notifications = false
    }
  }
  queue_name                         = "${var.bucket_events.queue_name}-reverse"
  max_receive_count                  = var.bucket_events.max_receive_count
  visibility_timeout_seconds         = var.bucket_events.visibility_timeout_seconds
  batch_size                         = var.bucket_events.batch_size
  maximum_batching_window_in_seconds = var.bucket_events.maximum_batching_window_in_seconds
  message_retention_seconds          = var.bucket_events.message_retention_seconds
  hold_until_release                 = false # reverse replication has no copy to wait for
  source_role_arn                    = var.target_role_arn
  target_role_arn                    = var.source_role_arn
  tags                               = var.tags
}

module "alarms" {
  source = "../alarms"

  name_prefix = local.name
  functions = merge(
    { for m in module.table_stream : "table-stream" => m.function_name },
    { for m in module.bucket_events : "bucket-events" => m.function_name },
    { for m in module.table_stream_reverse : "table-stream-reverse" => m.function_name },
    { for m in module.bucket_events_reverse : "bucket-events-reverse" => m.function_name },
  )
  stream_functions = merge(
    { for m in module.table_stream : "table-stream" => m.function_name },
    { for m in module.table_stream_reverse : "table-stream-reverse" => m.function_name },
  )
  dead_letter_queues = merge(
    { for m in module.table_stream : "stream-failures" => m.failure_queue_name },
    { for m in module.bucket_events : "events-dlq" => m.dlq_name },
    { for m in module.table_stream_reverse : "stream-failures-reverse" => m.failure_queue_name },
    { for m in module.bucket_events_reverse : "events-dlq-reverse" => m.dlq_name },
  )
  lag_queues = merge(
    { for m in module.bucket_events : "events" => m.queue_name },
    { for m in module.bucket_events_reverse : "events-reverse" => m.queue_name },
  )
  iterator_age_alarm_seconds = var.iterator_age_alarm_seconds
  alarm_actions              = var.alarm_actions
  tags                       = var.tags
}

# --- what the source account must add (cross-account) -----------------------------------------

locals {
  ferry_role_arns = compact([
    module.glue_jobs.table_job_role_arn,
    module.glue_jobs.bucket_job_role_arn,
    one(module.table_stream[*].role_arn),
    one(module.bucket_events[*].role_arn),
    one(module.table_stream_reverse[*].role_arn),
    one(module.bucket_events_reverse[*].role_arn),
  ])

  # A cross-account CopyObject is one request made with the target side's credentials: the source
  # bucket must grant them read. Those are ferry's bucket roles, or the target role they assume.
  source_bucket_readers = compact([
    module.glue_jobs.bucket_job_role_arn,
    one(module.bucket_events[*].role_arn),
    var.target_role_arn,
  ])

  source_account_policy_hints = {
    source_role_trust_statement = var.source_role_arn == null ? null : {
      Sid       = "FerryAssumesSourceRole"
      Effect    = "Allow"
      Principal = { AWS = local.ferry_role_arns }
      Action    = "sts:AssumeRole"
    }
    source_bucket_policy_statements = {
      for source, b in local.buckets : source => {
        Sid       = "FerryReadsSource"
        Effect    = "Allow"
        Principal = { AWS = local.source_bucket_readers }
        Action    = ["s3:GetObject", "s3:GetObjectTagging", "s3:GetObjectVersion", "s3:ListBucket"]
        Resource  = ["arn:${local.partition}:s3:::${b.source}", "arn:${local.partition}:s3:::${b.source}/*"]
      }
    }
    # The stream event-source mappings poll with the table_stream role, not an assumed role: a
    # stream in another account must allow that role in its resource-based policy.
    source_stream_policy_statements = {
      for source, t in local.tables : source => {
        Sid       = "FerryReadsStream"
        Effect    = "Allow"
        Principal = { AWS = compact([one(module.table_stream[*].role_arn)]) }
        Action    = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
        Resource  = t.source_stream_arn
      }
    }
  }
}
