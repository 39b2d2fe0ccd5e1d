output "name" {
  description = "Name of the target table."
  value       = var.name
}

output "arn" {
  description = "ARN of the target table (created here, or the given ARN of an existing one)."
  value       = var.create ? one(aws_dynamodb_table.this[*].arn) : var.arn
}

output "created" {
  description = "Whether this module created (and manages) the table."
  value       = var.create
}
