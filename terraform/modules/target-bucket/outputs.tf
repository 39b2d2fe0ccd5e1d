output "name" {
  description = "Name of the target bucket."
  value       = var.create ? one(aws_s3_bucket.this[*].bucket) : var.name
}

output "arn" {
  description = "ARN of the target bucket."
  value       = local.arn
}

output "created" {
  description = "Whether this module created (and manages) the bucket."
  value       = var.create
}
