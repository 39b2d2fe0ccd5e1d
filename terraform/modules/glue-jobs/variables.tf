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
  }))
  description = "Table mappings by source table name: the ARNs the table job's role may scan and write. Empty: no table job."
  default     = {}
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
