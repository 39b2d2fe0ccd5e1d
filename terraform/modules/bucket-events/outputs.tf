output "function_name" {
  description = "Name of the bucket_events function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the bucket_events function."
  value       = aws_lambda_function.this.arn
}

output "role_arn" {
  description = "ARN of the bucket_events function's role."
  value       = aws_iam_role.this.arn
}

output "event_source_mapping_uuid" {
  description = "UUID of the SQS event-source mapping (created disabled while the buckets are held; `ferry release` enables it)."
  value       = aws_lambda_event_source_mapping.this.uuid
}

output "queue_name" {
  description = "Name of the events queue."
  value       = aws_sqs_queue.this.name
}

output "queue_url" {
  description = "URL of the events queue."
  value       = aws_sqs_queue.this.url
}

output "queue_arn" {
  description = "ARN of the events queue."
  value       = aws_sqs_queue.this.arn
}

output "dlq_name" {
  description = "Name of the events dead-letter queue."
  value       = aws_sqs_queue.dlq.name
}

output "dlq_url" {
  description = "URL of the events dead-letter queue (read by `ferry redrive`)."
  value       = aws_sqs_queue.dlq.url
}

output "dlq_arn" {
  description = "ARN of the events dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "rule_names" {
  description = "EventBridge rule name of each source bucket."
  value       = { for source, rule in aws_cloudwatch_event_rule.this : source => rule.name }
}
