variable "name" {
  type        = string
  description = "Name of the export bucket (ferry-exports-<account>-<region>, the name the table job uses when the spec names none)."
}

variable "prefix" {
  type        = string
  description = "Key prefix of every export ferry requests (ferry/tables/export.py EXPORT_PREFIX); the lifecycle rule and the cross-account grants cover it."
  default     = "ferry-exports"
}

variable "expiry_days" {
  type        = number
  description = "Days after which an export is deleted (ferry/tables/export.py EXPORT_EXPIRY_DAYS)."
  default     = 7

  validation {
    condition     = var.expiry_days >= 1
    error_message = "expiry_days must be at least 1."
  }
}

variable "writer_role_arns" {
  type        = list(string)
  description = "Roles in other accounts that request exports into this bucket (the source role): the bucket policy lets them write exports."
  default     = []
}

variable "reader_role_arns" {
  type        = list(string)
  description = "Roles in other accounts that import from this bucket (the target role): the bucket policy lets them read exports."
  default     = []
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the customer managed KMS key of the bucket's default encryption."
}

variable "tags" {
  type        = map(string)
  description = "Tags for the bucket."
  default     = {}
}
