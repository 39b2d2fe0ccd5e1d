variable "name" {
  type        = string
  description = "Name of the key; the alias is alias/<name> (e.g. ferry-prod)."
}

variable "region" {
  type        = string
  description = "Region of the deployment: the CloudWatch Logs service principal and log-group ARNs in the key policy are regional."
}

variable "deletion_window_in_days" {
  type        = number
  description = "Waiting period before a scheduled key deletion takes effect (7-30 days)."
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for the key."
  default     = {}
}
