output "function_name" {
  description = "Name of the table_stream function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the table_stream function."
  value       = aws_lambda_function.this.arn
}

output "role_arn" {
  description = "ARN of the table_stream function's role."
  value       = aws_iam_role.this.arn
}

output "event_source_mapping_uuids" {
  description = "UUID of each stream event-source mapping Terraform manages (insert-only tables; with reverse every new table), by source table."
  value       = { for source, mapping in aws_lambda_event_source_mapping.this : source => mapping.uuid }
}

output "tables_mapped_at_release" {
  description = "Replay source tables: no stream mapping here; the release (the table job at the end of its copy, or `ferry release --stage`) creates it, at TRIM_HORIZON with no maximum record age. Empty with reverse."
  value       = local.replay_tables
}

output "failure_queue_name" {
  description = "Name of the stream on-failure queue."
  value       = aws_sqs_queue.failures.name
}

output "failure_queue_url" {
  description = "URL of the stream on-failure queue (read by `ferry redrive`)."
  value       = aws_sqs_queue.failures.url
}

output "failure_queue_arn" {
  description = "ARN of the stream on-failure queue."
  value       = aws_sqs_queue.failures.arn
}
