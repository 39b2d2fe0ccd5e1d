variable "create" {
  type        = bool
  description = "Create the target bucket. false: it already exists and is only referenced by name."
}

variable "name" {
  type        = string
  description = "Name of the target bucket."
}

variable "versioning" {
  type        = bool
  description = "Enable versioning on a created bucket (mirrors the source's versioning)."
}

variable "account_id" {
  type        = string
  description = "Account the target belongs in (the target role's account), or null when it is the account Terraform deploys to."
  default     = null
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the customer managed KMS key for the default encryption of a created bucket."
}

variable "abort_incomplete_multipart_upload_days" {
  type        = number
  description = "Days after which incomplete multipart uploads (an interrupted part-by-part copy) are aborted."
  default     = 7
}

variable "tags" {
  type        = map(string)
  description = "Tags for a created bucket."
  default     = {}
}
