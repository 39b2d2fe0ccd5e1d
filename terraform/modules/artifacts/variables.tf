variable "name" {
  type        = string
  description = "Name of the artifacts bucket (Glue scripts and ferry.zip)."
}

variable "files" {
  type        = map(string)
  description = "Objects to upload: object key => local file path (relative to the Terraform working directory). Re-uploaded whenever the file's content changes."
  default     = {}
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the customer managed KMS key that encrypts the bucket and its objects."
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days after which replaced versions of an artifact are deleted."
  default     = 30
}

variable "abort_incomplete_multipart_upload_days" {
  type        = number
  description = "Days after which incomplete multipart uploads are aborted."
  default     = 7
}

variable "tags" {
  type        = map(string)
  description = "Tags for the bucket and its objects."
  default     = {}
}
