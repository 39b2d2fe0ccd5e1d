variable "name_prefix" {
  type        = string
  description = "Prefix of every name (ferry-<stage>): jobs <prefix>-table-backfill and <prefix>-bucket-backfill."
}

variable "region" {
  type        = string
  description = "Region of the deployment (the log-group ARNs in the jobs' policies)."
}

variable "spec_json" {
  type        = string
  description = "The ferry spec as compact JSON (the Lambdas' FERRY_SPEC): both jobs' --spec_json default argument."
}

variable "tables" {
  type = map(object({
    source_arn = string
    target_arn = string
    protocol   = string
  }))
  description = "Table mappings by source table name: the ARNs the table job's role may scan and write, and each table's protocol (replay or insert-only: an insert-only target may get PartiQL INSERTs, see insert_mode). Empty: no table job."
  default     = {}

  validation {
    condition     = alltrue([for t in var.tables : contains(["replay", "insert-only"], t.protocol)])
    error_message = "Every table's protocol must be replay or insert-only."
  }
}

variable "buckets" {
  type = map(object({
    source = string
    target = string
    prefix = string
  }))
  description = "Bucket mappings by source bucket name: the buckets (and key prefix) the bucket job's role may read and write. Empty: no bucket job."
  default     = {}
}

variable "state_table_arn" {
  type        = string
  description = "ARN of ferry's state table."
}

variable "read_mode" {
  type        = string
  description = "backfill.read: scan (the table job scans the sources) or export (it exports them to export_bucket_name and reads the export)."
  default     = "scan"

  validation {
    condition     = contains(["scan", "export"], var.read_mode)
    error_message = "read_mode must be scan or export."
  }
}

variable "write_mode" {
  type        = string
  description = "backfill.write: batch (the table job writes the items) or import (ImportTable creates each target from its export)."
  default     = "batch"

  validation {
    condition     = contains(["batch", "import"], var.write_mode)
    error_message = "write_mode must be batch or import."
  }
}

variable "insert_mode" {
  type        = string
  description = "backfill.insert_mode: how the table job writes an insert-only table: put (conditional PutItem only), partiql (PutItem and PartiQL INSERTs: dynamodb:PartiQLInsert on the insert-only targets) or auto (partiql's grants, and dynamodb:PartiQLInsert on the state table, where the job's driver probes the endpoint). Without insert-only tables it grants nothing."
  default     = "auto"

  validation {
    condition     = contains(["auto", "put", "partiql"], var.insert_mode)
    error_message = "insert_mode must be auto, put or partiql."
  }
}

variable "export_bucket_name" {
  type        = string
  description = "The bucket the exports go to (read_mode export), or null."
  default     = null
}

variable "export_prefix" {
  type        = string
  description = "Key prefix of every export ferry requests: the table job's role writes and reads exports under it only."
  default     = "ferry-exports"
}

variable "stream_function_arn" {
  type        = string
  description = "ARN of the stage's table_stream function: the only function whose stream mappings the table job may create (a replay table's release; an insert-only copy's missing consumer). Null without tables."
  default     = null
}

variable "stream_failure_queue_arn" {
  type        = string
  description = "ARN of the stream on-failure queue (the destination of the stream mappings the table job creates). Null without tables."
  default     = null
}

variable "bucket_function_arn" {
  type        = string
  description = "ARN of the stage's bucket_events function: the only function whose events-queue mapping the bucket job may enable or create. Null without buckets."
  default     = null
}

variable "events_queue_arn" {
  type        = string
  description = "ARN of the S3 events queue (its depth at the release, its ARN for the mapping). Null without buckets."
  default     = null
}

variable "hold_bucket_events" {
  type        = bool
  description = "Replay buckets: the bucket job's release enables the events queue's mapping (and reads the queue); without it the job needs neither."
  default     = false
}

variable "table_script_location" {
  type        = string
  description = "s3:// URI of glue_jobs/table_backfill.py."
}

variable "bucket_script_location" {
  type        = string
  description = "s3:// URI of glue_jobs/bucket_backfill.py."
}

variable "extra_py_files" {
  type        = string
  description = "s3:// URI of ferry.zip (the ferry core, --extra-py-files)."
}

variable "artifact_object_arns" {
  type        = list(string)
  description = "ARNs of the artifact objects the jobs read (scripts and ferry.zip)."
}

variable "glue_version" {
  type        = string
  description = "Glue version of the jobs."
  default     = "5.0"
}

variable "worker_type" {
  type        = string
  description = "Glue worker type."
  default     = "G.1X"
}

variable "number_of_workers" {
  type        = number
  description = "Workers per job run."
  default     = 2

  validation {
    condition     = var.number_of_workers >= 2
    error_message = "number_of_workers must be at least 2 (one driver, one executor)."
  }
}

variable "timeout_minutes" {
  type        = number
  description = "Job run timeout in minutes. A run that times out resumes from its checkpoints when started again."
  default     = 2880
}

variable "source_role_arn" {
  type        = string
  description = "Role in the source account the jobs may assume (cross-account), or null: their policies allow sts:AssumeRole on it (the jobs read it from spec_json)."
  default     = null
}

variable "target_role_arn" {
  type        = string
  description = "Role in the target account the jobs may assume (cross-account), or null: their policies allow sts:AssumeRole on it (the jobs read it from spec_json)."
  default     = null
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the customer managed KMS key (security configuration, log groups, ferry's tables and buckets)."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the jobs' log groups."
  default     = 365
}

variable "tags" {
  type        = map(string)
  description = "Tags for the jobs, roles and log groups."
  default     = {}
}
