# The variables of ferry's deployment: exactly the keys `ferry tfvars` writes to
# stages/<stage>.ferry.tfvars.json (plus the stage sizing in stages/<stage>.tfvars). The root
# declares the same variables and passes every one through unchanged.

variable "stage" {
  type        = string
  description = "Stage name (dev, prod, ...): part of every resource name (ferry-<stage>-...)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.stage))
    error_message = "stage must be 1-20 characters: lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "AWS region of the deployment (the provider's region)."
}

variable "spec_json" {
  type        = string
  description = "The ferry spec as JSON; becomes the Lambdas' FERRY_SPEC environment variable and the Glue jobs' --spec_json argument."

  validation {
    condition     = can(jsondecode(var.spec_json))
    error_message = "spec_json must be valid JSON (the spec as `ferry tfvars` writes it)."
  }
}

variable "state_table_name" {
  type        = string
  description = "Name of ferry's state table (phases, backfill checkpoints, verify results)."
}

variable "source_role_arn" {
  type        = string
  description = "Role in the source account; when set, the Glue jobs and both functions may sts:AssumeRole it to reach the source (cross-account)."
  default     = null

  validation {
    condition     = var.source_role_arn == null || can(regex("^arn:[a-z-]+:iam::[0-9]{12}:role/", var.source_role_arn))
    error_message = "source_role_arn must be null or an IAM role ARN."
  }
}

variable "target_role_arn" {
  type        = string
  description = "Role in the target account; when set, the Glue jobs and both functions may sts:AssumeRole it to reach the target (cross-account)."
  default     = null

  validation {
    condition     = var.target_role_arn == null || can(regex("^arn:[a-z-]+:iam::[0-9]{12}:role/", var.target_role_arn))
    error_message = "target_role_arn must be null or an IAM role ARN."
  }
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

  validation {
    condition     = length(distinct([for t in var.tables : t.source])) == length(var.tables)
    error_message = "tables: every source table may appear only once."
  }

  validation {
    condition     = length(distinct([for t in var.tables : t.target])) == length(var.tables)
    error_message = "tables: every target table may appear only once."
  }

  validation {
    condition     = alltrue([for t in var.tables : t.source != t.target])
    error_message = "tables: a target must differ from its source."
  }

  validation {
    condition     = alltrue([for t in var.tables : can(regex("^arn:[a-z-]+:dynamodb:[^:]+:[0-9]{12}:table/[^/]+/stream/", t.source_stream_arn))])
    error_message = "tables: source_stream_arn must be a DynamoDB stream ARN (run `ferry init --sources-only` to enable the stream)."
  }

  validation {
    condition     = alltrue([for t in var.tables : contains(["replay", "insert-only"], t.protocol)])
    error_message = "tables: protocol must be replay or insert-only."
  }

  validation {
    condition     = alltrue([for t in var.tables : contains(["PAY_PER_REQUEST", "PROVISIONED"], t.billing_mode)])
    error_message = "tables: billing_mode must be PAY_PER_REQUEST or PROVISIONED."
  }

  validation {
    condition     = alltrue([for t in var.tables : t.billing_mode == "PAY_PER_REQUEST" || (t.read_capacity != null && t.write_capacity != null)])
    error_message = "tables: a PROVISIONED table needs read_capacity and write_capacity."
  }

  validation {
    condition     = alltrue(flatten([for t in var.tables : [for a in t.attributes : contains(["S", "N", "B"], a.type)]]))
    error_message = "tables: attribute types must be S, N or B."
  }
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

  validation {
    condition     = length(distinct([for b in var.buckets : b.source])) == length(var.buckets)
    error_message = "buckets: every source bucket may appear only once."
  }

  validation {
    condition     = alltrue([for b in var.buckets : b.source != b.target])
    error_message = "buckets: a target must differ from its source."
  }
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

  validation {
    condition     = var.bucket_events.message_retention_seconds >= 60 && var.bucket_events.message_retention_seconds <= 1209600
    error_message = "bucket_events.message_retention_seconds must be between 60 and 1209600 (14 days, the SQS maximum)."
  }
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

  validation {
    condition     = contains(["scan", "export"], var.backfill.read) && contains(["batch", "import"], var.backfill.write)
    error_message = "backfill.read must be scan or export, backfill.write batch or import."
  }

  validation {
    condition     = contains(["auto", "put", "partiql"], var.backfill.insert_mode)
    error_message = "backfill.insert_mode must be auto, put or partiql."
  }

  validation {
    condition     = var.backfill.write != "import" || var.backfill.read == "export"
    error_message = "backfill.write import loads an export: it needs backfill.read export."
  }

  validation {
    condition     = (var.backfill.read == "export" || var.backfill.export_bucket == "") && (!var.backfill.create_export_bucket || var.backfill.export_bucket != "")
    error_message = "backfill.export_bucket is set only when backfill.read is export, and names the bucket to create when create_export_bucket."
  }
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

  validation {
    condition     = var.lambda_timeout >= 1 && var.lambda_timeout <= 900
    error_message = "lambda_timeout must be between 1 and 900 seconds."
  }
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

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:[a-z-]+:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
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

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ..., 365, ..., 3653)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource (the root's provider adds Project, Stage and ManagedBy)."
  default     = {}
}
