output "table_job_name" {
  description = "Name of the table backfill job, or null when there are no tables."
  value       = one(aws_glue_job.table[*].name)
}

output "bucket_job_name" {
  description = "Name of the bucket backfill job, or null when there are no buckets."
  value       = one(aws_glue_job.bucket[*].name)
}

output "table_job_role_arn" {
  description = "ARN of the table backfill job's role, or null."
  value       = one(aws_iam_role.table[*].arn)
}

output "bucket_job_role_arn" {
  description = "ARN of the bucket backfill job's role, or null."
  value       = one(aws_iam_role.bucket[*].arn)
}

output "security_configuration_name" {
  description = "Name of the Glue security configuration of both jobs."
  value       = aws_glue_security_configuration.this.name
}
