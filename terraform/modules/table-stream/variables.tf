variable "function_name" {
  type        = string
  description = "Name of the table_stream function (also its role's name)."
}

variable "region" {
  type        = string
  description = "Region of the deployment."
}

variable "lambda_package" {
  type        = string
  description = "Path of Chalice's deployment.zip (relative to the Terraform working directory)."
}

variable "handler" {
  type        = string
  description = "Handler of the function in the Chalice package."
  default     = "app.table_stream"
}

variable "runtime" {
  type        = string
  description = "Lambda runtime."
  default     = "python3.11"
}

variable "memory_size" {
  type        = number
  description = "Memory of the function in MB."
  default     = 512
}

variable "timeout" {
  type        = number
  description = "Timeout of the function in seconds."
  default     = 120
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions of the function."
  default     = 100
}

variable "spec_json" {
  type        = string
  description = "The ferry spec as JSON (the FERRY_SPEC environment variable)."
}

variable "log_level" {
  type        = string
  description = "POWERTOOLS_LOG_LEVEL of the function."
  default     = "INFO"
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the function's log group."
  default     = 365
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the customer managed KMS key (environment, log group, failure queue, ferry's tables)."
}

variable "tables" {
  type = map(object({
    source_stream_arn = string
    target_arn        = string
    protocol          = string
  }))
  description = "Table mappings by source table name: the stream to read, the target to write and the protocol (an insert-only table gets its event-source mapping here; a replay table's is created by its release; with reverse every table gets one)."

  validation {
    condition     = alltrue([for t in var.tables : contains(["replay", "insert-only"], t.protocol)])
    error_message = "tables: protocol must be replay or insert-only."
  }
}

variable "state_table_arn" {
  type        = string
  description = "ARN of ferry's state table (the handler reads each table's phase and writes a lag sample per invocation)."
}

variable "failure_queue_name" {
  type        = string
  description = "Name of the SQS queue that receives the metadata of stream batches that failed after the retries (the mappings' on-failure destination)."
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
  description = "Settings of every stream event-source mapping."

  validation {
    condition     = var.stream_mapping.maximum_retry_attempts >= 0 && var.stream_mapping.maximum_retry_attempts <= 10000
    error_message = "stream_mapping.maximum_retry_attempts must be finite (0-10000): a poison record must not block its shard."
  }

  validation {
    condition     = var.stream_mapping.maximum_record_age_in_seconds >= 60 && var.stream_mapping.maximum_record_age_in_seconds <= 604800
    error_message = "stream_mapping.maximum_record_age_in_seconds must be finite (60-604800)."
  }

  validation {
    condition     = contains(["TRIM_HORIZON", "LATEST"], var.stream_mapping.starting_position)
    error_message = "stream_mapping.starting_position must be TRIM_HORIZON (ferry's default) or LATEST."
  }

  validation {
    condition     = var.stream_mapping.parallelization_factor >= 1 && var.stream_mapping.parallelization_factor <= 10
    error_message = "stream_mapping.parallelization_factor must be between 1 and 10."
  }

  validation {
    condition     = var.stream_mapping.batch_size >= 1 && var.stream_mapping.batch_size <= 10000
    error_message = "stream_mapping.batch_size must be between 1 and 10000."
  }

  validation {
    condition     = var.stream_mapping.maximum_batching_window_in_seconds >= 0 && var.stream_mapping.maximum_batching_window_in_seconds <= 300
    error_message = "stream_mapping.maximum_batching_window_in_seconds must be between 0 and 300."
  }
}

variable "source_role_arn" {
  type        = string
  description = "Role in the source account the function may assume, or null."
  default     = null
}

variable "target_role_arn" {
  type        = string
  description = "Role in the target account the function may assume, or null."
  default     = null
}

variable "tags" {
  type        = map(string)
  description = "Tags for the function, role, log group and queue."
  default     = {}
}

variable "reverse" {
  type        = bool
  description = "This instance is reverse replication (table_stream_reverse, docs/adr/0009): tables maps each new table (source_stream_arn: its stream, enabled by `ferry reverse`) to its old table (target_arn), and every table gets its stream mapping here, whatever its protocol."
  default     = false
}
