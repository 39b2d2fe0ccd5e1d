output "bucket_name" {
  description = "Name of the artifacts bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the artifacts bucket."
  value       = aws_s3_bucket.this.arn
}

output "object_uris" {
  description = "s3:// URI of every uploaded artifact, by object key."
  value       = { for key, object in aws_s3_object.this : key => "s3://${object.bucket}/${object.key}" }
}

output "object_arns" {
  description = "ARN of every uploaded artifact, by object key (for the readers' IAM policies)."
  value       = { for key, object in aws_s3_object.this : key => "${aws_s3_bucket.this.arn}/${object.key}" }
}
