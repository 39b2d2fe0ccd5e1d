variable "name" {
  type        = string
  description = "Name of the state table (phases, backfill checkpoints, verify results; keys pk/sk)."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the customer managed KMS key that encrypts the table."
}

variable "deletion_protection_enabled" {
  type        = bool
  description = "Protect the table from deletion: it holds the checkpoints of unfinished backfills."
  default     = true
}

variable "tags" {
  type        = map(string)
  description = "Tags for the table."
  default     = {}
}
