# The deployment's variables: exactly the keys `ferry tfvars` writes to
# stages/<stage>.ferry.tfvars.json, plus the sizing a stage's stages/<stage>.tfvars sets (passed
# after it, so it wins). Validated in modules/ferry.

variable "stage" {
  type        = string
  description = "Stage name (dev, prod, ...): part of every resource name (ferry-<stage>-...)."
}

variable "region" {
  type        = string
  description = "AWS region of the deployment (the provider's region)."
}

variable "spec_json" {
  type        = string
  description = "The ferry spec as JSON; becomes the Lambdas' FERRY_SPEC environment variable and the Glue jobs' --spec_json argument."
}

variable "state_table_name" {
  type        = string
  description = "Name of ferry's state table (phases, backfill checkpoints, verify results)."
}

variable "source_role_arn" {
  type        = string
  description = "Role in the source account; when set, the Glue jobs and both functions may sts:AssumeRole it to reach the source (cross-account)."
  default     = null
}

variable "target_role_arn" {
  type        = string
  description = "Role in the target account; when set, the Glue jobs and both functions may sts:AssumeRole it to reach the target (cross-account)."
  default     = null
}

variable "tables" {
  type = list(object({
    source            = string
    target            = string
    source_arn        = string
    source_stream_arn = string
    protocol          = string
    create_target     = bool
    target_arn        = string
    target_stream_arn = optional(string, "")
    hash_key          = string
    range_key         = optional(string)
    attributes = list(object({
      name = string
      type = string
    }))
    billing_mode   = string
    read_capacity  = optional(number)
    write_capacity = optional(number)
    global_secondary_indexes = optional(list(object({
      name               = string
      hash_key           = string
      range_key          = optional(string)
      projection_type    = string
      non_key_attributes = optional(list(string))
      read_capacity      = optional(number)
      write_capacity     = optional(number)
    })), [])
    local_secondary_indexes = optional(list(object({
      name               = string
      range_key          = string
      projection_type    = string
      non_key_attributes = optional(list(string))
    })), [])
    ttl_attribute = optional(string)
  }))
  description = "Table mappings. The source tables (and their streams, enabled by `ferry init --sources-only`) are not managed here; targets are created when create_target is true, otherwise only referenced (backfill.write: import creates them). protocol: insert-only tables get their stream mapping here, replay tables from `ferry release`. target_stream_arn: the target's stream once `ferry reverse` enabled it (\"\" before), read by reverse replication."
  default     = []
}

variable "buckets" {
  type = list(object({
    source                      = string
    target                      = string
    prefix                      = string
    create_target               = bool
    versioning                  = bool
    manage_source_notifications = bool
  }))
  description = "Bucket mappings. Source buckets are not managed here (EventBridge is enabled on them by `ferry init --sources-only`, unless manage_source_notifications); targets are created when create_target is true."
  default     = []
}

variable "stream_mapping" {
  type = object({
    batch_size                         = number
    maximum_retry_attempts             = number
    maximum_record_age_in_seconds      = number
    bisect_batch_on_function_error     = bool
    starting_position                  = string
    parallelization_factor             = number
    maximum_batching_window_in_seconds = number
  })
  description = "Settings of every DynamoDB stream event-source mapping (finite retries and record age; TRIM_HORIZON)."
}

variable "stream_failure_queue_name" {
  type        = string
  description = "Name of the SQS queue that receives failed stream batches (the mappings' on-failure destination)."
}

variable "bucket_events" {
  type = object({
    queue_name                         = string
    max_receive_count                  = number
    visibility_timeout_seconds         = number
    batch_size                         = number
    maximum_batching_window_in_seconds = number
    message_retention_seconds          = number
    hold_until_release                 = bool
  })
  description = "The S3 events queue (its dead-letter queue is <queue_name>-dlq) and its event-source mapping; hold_until_release (replay buckets): the mapping is created disabled and `ferry release` enables it."
}

variable "reverse" {
  type        = bool
  description = "Deploy reverse replication too (docs/adr/0009): the functions table_stream_reverse and bucket_events_reverse, their roles, the queues <stream_failure_queue_name>-reverse and <bucket_events.queue_name>-reverse (+ -dlq), an EventBridge rule per target bucket, and a stream mapping per target table (tables[*].target_stream_arn). `ferry tfvars` writes true once `ferry reverse` has recorded its step, so run `ferry reverse --stage <stage>` first (it enables the new side's change capture), then `make deploy STAGE=<stage>`."
  default     = false
}

variable "backfill" {
  type = object({
    read                 = string
    write                = string
    insert_mode          = string
    export_bucket        = string
    create_export_bucket = bool
    export_prefix        = string
    export_expiry_days   = number
  })
  description = "How the table backfill job copies (backfill.read scan|export, backfill.write batch|import, backfill.insert_mode auto|put|partiql for insert-only tables: its role gets only what that path calls) and the bucket a point-in-time export goes to: export_bucket (\"\" without exports), created here when create_export_bucket, its exports (under export_prefix/) expiring after export_expiry_days."
}

variable "lambda_package" {
  type        = string
  description = "Chalice's `chalice package` deployment.zip (handlers app.table_stream and app.bucket_events, and with reverse app.table_stream_reverse and app.bucket_events_reverse), relative to the root module directory (terraform/)."
  default     = "../build/chalice/deployment.zip"
}

variable "ferry_zip" {
  type        = string
  description = "build/ferry.zip, the ferry core for Glue's --extra-py-files, relative to the root module directory (terraform/)."
  default     = "../build/ferry.zip"
}

variable "glue_scripts_dir" {
  type        = string
  description = "Directory holding table_backfill.py and bucket_backfill.py, relative to the root module directory (terraform/)."
  default     = "../glue_jobs"
}

variable "glue_version" {
  type        = string
  description = "Glue version of the backfill jobs."
  default     = "5.0"
}

variable "glue_worker_type" {
  type        = string
  description = "Glue worker type of the backfill jobs."
  default     = "G.1X"
}

variable "glue_number_of_workers" {
  type        = number
  description = "Glue workers per backfill job run."
  default     = 2
}

variable "lambda_memory_size" {
  type        = number
  description = "Memory (MB) of both functions."
  default     = 512
}

variable "lambda_timeout" {
  type        = number
  description = "Timeout (s) of both functions; must be below bucket_events.visibility_timeout_seconds."
  default     = 120
}

variable "lambda_reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions of each function."
  default     = 100
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key to use; null creates a ferry key (its policy must then allow CloudWatch Logs and EventBridge as the created one does)."
  default     = null
}

variable "alarm_actions" {
  type        = list(string)
  description = "ARNs (e.g. SNS topics) notified when an alarm fires or recovers."
  default     = []
}

variable "iterator_age_alarm_seconds" {
  type        = number
  description = "Alarm threshold for stream IteratorAge and for the age of the oldest queued bucket event, in seconds."
  default     = 300
}

variable "log_retention_days" {
  type        = number
  description = "Retention of every ferry log group, in days."
  default     = 365
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource (the root's provider adds Project, Stage and ManagedBy)."
  default     = {}
}
