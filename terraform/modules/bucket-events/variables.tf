variable "function_name" {
  type        = string
  description = "Name of the bucket_events function (also its role's name)."
}

variable "rule_name_prefix" {
  type        = string
  description = "Prefix of the EventBridge rule names (<prefix>-<source bucket>, shortened with a hash past 64 characters)."
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
  default     = "app.bucket_events"
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
  description = "Timeout of the function in seconds; must be below the queue's visibility timeout."
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
  description = "ARN of the customer managed KMS key (environment, log group, queues)."
}

variable "buckets" {
  type = map(object({
    source                      = string
    target                      = string
    prefix                      = string
    manage_source_notifications = bool
  }))
  description = "Bucket mappings by source bucket name: one EventBridge rule per source; the buckets the function reads and writes."

  validation {
    condition     = length(var.buckets) > 0
    error_message = "buckets must not be empty (the composition creates this module only for bucket mappings)."
  }
}

variable "queue_name" {
  type        = string
  description = "Name of the events queue; its dead-letter queue is <queue_name>-dlq."
}

variable "max_receive_count" {
  type        = number
  description = "Receives of a message before SQS moves it to the dead-letter queue."
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "visibility_timeout_seconds" {
  type        = number
  description = "Visibility timeout of the events queue in seconds."
  default     = 120

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200
    error_message = "visibility_timeout_seconds must be between 0 and 43200."
  }
}

variable "message_retention_seconds" {
  type        = number
  description = "Retention of the events queue: 14 days (the SQS maximum), as long as a replay copy may hold its buckets' events."
  default     = 1209600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be between 60 and 1209600 (14 days)."
  }
}

variable "hold_until_release" {
  type        = bool
  description = "Replay buckets: create the queue's event-source mapping disabled; `ferry release` enables it once no bucket is held (Terraform then ignores `enabled`)."
  default     = false
}

variable "batch_size" {
  type        = number
  description = "Messages per invocation of the SQS event-source mapping."
  default     = 10

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size must be between 1 and 10000."
  }
}

variable "maximum_batching_window_in_seconds" {
  type        = number
  description = "Seconds the mapping gathers messages before invoking (must be at least 1 when batch_size > 10)."
  default     = 0

  validation {
    condition     = var.maximum_batching_window_in_seconds >= 0 && var.maximum_batching_window_in_seconds <= 300
    error_message = "maximum_batching_window_in_seconds must be between 0 and 300."
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
  description = "Tags for the queues, rules, function, role and log group."
  default     = {}
}

variable "state_table_arn" {
  type        = string
  description = "ARN of ferry's state table (the handler writes a lag sample per invocation and source bucket)."
}

variable "reverse" {
  type        = bool
  description = "This instance is reverse replication (bucket_events_reverse, docs/adr/0009): buckets maps each new bucket (EventBridge enabled on it by `ferry reverse`) to its old bucket (never held: the composition passes hold_until_release = false)."
  default     = false
}
