output "state_table_name" {
  description = "Name of ferry's state table."
  value       = module.state_table.name
}

output "state_table_arn" {
  description = "ARN of ferry's state table."
  value       = module.state_table.arn
}

output "target_table_names" {
  description = "Target table name by source table."
  value       = { for source, m in module.target_table : source => m.name }
}

output "target_table_arns" {
  description = "Target table ARN by source table."
  value       = { for source, m in module.target_table : source => m.arn }
}

output "target_bucket_names" {
  description = "Target bucket name by source bucket."
  value       = { for source, m in module.target_bucket : source => m.name }
}

output "artifacts_bucket" {
  description = "Name of the artifacts bucket (Glue scripts, ferry.zip)."
  value       = module.artifacts.bucket_name
}

output "table_backfill_job_name" {
  description = "Glue job for table backfills (`ferry backfill --engine glue --job-name ...`), or null without tables."
  value       = module.glue_jobs.table_job_name
}

output "bucket_backfill_job_name" {
  description = "Glue job for bucket backfills, or null without buckets."
  value       = module.glue_jobs.bucket_job_name
}

output "function_names" {
  description = "Lambda function names: table_stream and bucket_events (each only when it has work), and with reverse table_stream_reverse and bucket_events_reverse."
  value = merge(
    { for m in module.table_stream : "table_stream" => m.function_name },
    { for m in module.bucket_events : "bucket_events" => m.function_name },
    { for m in module.table_stream_reverse : "table_stream_reverse" => m.function_name },
    { for m in module.bucket_events_reverse : "bucket_events_reverse" => m.function_name },
  )
}

output "function_arns" {
  description = "Lambda function ARNs: table_stream and bucket_events, and with reverse table_stream_reverse and bucket_events_reverse."
  value = merge(
    { for m in module.table_stream : "table_stream" => m.function_arn },
    { for m in module.bucket_events : "bucket_events" => m.function_arn },
    { for m in module.table_stream_reverse : "table_stream_reverse" => m.function_arn },
    { for m in module.bucket_events_reverse : "bucket_events_reverse" => m.function_arn },
  )
}

output "stream_event_source_mapping_uuids" {
  description = "UUID of each DynamoDB stream event-source mapping Terraform manages (insert-only tables), by source table."
  value       = merge({}, [for m in module.table_stream : m.event_source_mapping_uuids]...)
}

output "stream_tables_mapped_at_release" {
  description = "Replay source tables: Terraform creates no stream mapping for them; the release (the table job at the end of its copy, or `ferry release --stage`) creates it, at TRIM_HORIZON with no maximum record age."
  value       = flatten([for m in module.table_stream : m.tables_mapped_at_release])
}

output "export_bucket" {
  description = "The bucket the table job's point-in-time exports go to (backfill.read: export; created here unless the spec names one), or null."
  value       = local.exports ? local.export_bucket_name : null
}

output "bucket_events_event_source_mapping_uuid" {
  description = "UUID of the events queue's event-source mapping (disabled until `ferry release` while the buckets are held), or null without buckets."
  value       = one(module.bucket_events[*].event_source_mapping_uuid)
}

output "events_queue_url" {
  description = "URL of the S3 events queue, or null without buckets."
  value       = one(module.bucket_events[*].queue_url)
}

output "events_dlq_url" {
  description = "URL of the S3 events dead-letter queue, or null without buckets."
  value       = one(module.bucket_events[*].dlq_url)
}

output "stream_failure_queue_url" {
  description = "URL of the stream on-failure queue, or null without tables."
  value       = one(module.table_stream[*].failure_queue_url)
}

output "role_arns" {
  description = "IAM role ARNs of the Glue jobs and functions that exist."
  value = merge(
    module.glue_jobs.table_job_role_arn == null ? {} : { table_backfill = module.glue_jobs.table_job_role_arn },
    module.glue_jobs.bucket_job_role_arn == null ? {} : { bucket_backfill = module.glue_jobs.bucket_job_role_arn },
    { for m in module.table_stream : "table_stream" => m.role_arn },
    { for m in module.bucket_events : "bucket_events" => m.role_arn },
    { for m in module.table_stream_reverse : "table_stream_reverse" => m.role_arn },
    { for m in module.bucket_events_reverse : "bucket_events_reverse" => m.role_arn },
  )
}

output "kms_key_arn" {
  description = "ARN of the KMS key ferry uses (created, or the given kms_key_arn)."
  value       = local.kms_key_arn
}

output "source_account_policy_hints" {
  description = "Statements the SOURCE account must add for a cross-account migration: the trust statement of source_role_arn (ferry's roles may assume it), a bucket policy statement per source bucket (ferry's bucket roles, or target_role_arn, may read: cross-account CopyObject is one request made by the target side), and a stream policy statement per source table (the stream mappings poll with the table_stream role)."
  value       = local.source_account_policy_hints
}

output "reverse_stream_event_source_mapping_uuids" {
  description = "UUID of each reverse stream event-source mapping (reverse = true), by new table."
  value       = merge({}, [for m in module.table_stream_reverse : m.event_source_mapping_uuids]...)
}

output "reverse_events_queue_url" {
  description = "URL of the reverse events queue (the new buckets' object events), or null without reverse or buckets."
  value       = one(module.bucket_events_reverse[*].queue_url)
}
