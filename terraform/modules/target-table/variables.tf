variable "create" {
  type        = bool
  description = "Create the target table. false: it already exists and is only referenced by name and ARN."
}

variable "name" {
  type        = string
  description = "Name of the target table."
}

variable "arn" {
  type        = string
  description = "ARN the target table has (create = false) or will have; used as is when the table is not created here."
}

variable "hash_key" {
  type        = string
  description = "Partition key attribute of the table (the source's)."
}

variable "range_key" {
  type        = string
  description = "Sort key attribute of the table (the source's), or null."
  default     = null
}

variable "attributes" {
  type = list(object({
    name = string
    type = string
  }))
  description = "Key attributes of the table and its indexes (type S, N or B)."
}

variable "billing_mode" {
  type        = string
  description = "PAY_PER_REQUEST or PROVISIONED (the source's)."

  validation {
    condition     = contains(["PAY_PER_REQUEST", "PROVISIONED"], var.billing_mode)
    error_message = "billing_mode must be PAY_PER_REQUEST or PROVISIONED."
  }
}

variable "read_capacity" {
  type        = number
  description = "Read capacity units (PROVISIONED only)."
  default     = null
}

variable "write_capacity" {
  type        = number
  description = "Write capacity units (PROVISIONED only)."
  default     = null
}

variable "global_secondary_indexes" {
  type = list(object({
    name               = string
    hash_key           = string
    range_key          = optional(string)
    projection_type    = string
    non_key_attributes = optional(list(string))
    read_capacity      = optional(number)
    write_capacity     = optional(number)
  }))
  description = "Global secondary indexes (the source's). Capacity defaults to the table's when PROVISIONED."
  default     = []
}

variable "local_secondary_indexes" {
  type = list(object({
    name               = string
    range_key          = string
    projection_type    = string
    non_key_attributes = optional(list(string))
  }))
  description = "Local secondary indexes (the source's)."
  default     = []
}

variable "ttl_attribute" {
  type        = string
  description = "TTL attribute to enable on the created table (the source's), or null."
  default     = null
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the customer managed KMS key that encrypts a created table."
}

variable "deletion_protection_enabled" {
  type        = bool
  description = "Protect a created table from deletion."
  default     = true
}

variable "tags" {
  type        = map(string)
  description = "Tags for a created table."
  default     = {}
}
