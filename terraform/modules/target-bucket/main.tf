# One target bucket. With create = false nothing is created: an existing target is only referenced
# by name, and its configuration (policy, encryption, notifications) stays its owner's.
data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  arn = "arn:${data.aws_partition.current.partition}:s3:::${var.name}"
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:A migration target: object writes are recorded by CloudTrail data events if the account enables them; a separate access-log bucket per target is not part of ferry.
  #checkov:skip=CKV_AWS_144:The target is itself the copy of the source; cross-region replication is the owner's choice after the migration.
  #checkov:skip=CKV2_AWS_62:ferry writes the target; nothing consumes its object events. The owner adds notifications after cut-over.
  count = var.create ? 1 : 0

  bucket = var.name
  tags   = var.tags

  lifecycle {
    # The bucket is created in the account Terraform deploys to, which must be the target's.
    precondition {
      condition     = var.account_id == null || var.account_id == data.aws_caller_identity.current.account_id
      error_message = "target bucket ${var.name}: the target account is ${coalesce(var.account_id, "-")}, not the account Terraform deploys to; a target in another account must already exist (create_target = false)."
    }
  }
}

resource "aws_s3_bucket_versioning" "this" {
  count = var.create ? 1 : 0

  bucket = aws_s3_bucket.this[0].id

  versioning_configuration {
    # "Disabled" is only valid for a bucket that never had versioning, which a created target is.
    status = var.versioning ? "Enabled" : "Disabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  count = var.create ? 1 : 0

  bucket = aws_s3_bucket.this[0].id

  # The default for writes that name no encryption; ferry's copies pass the source object's
  # own server-side encryption, so objects keep theirs.
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  count = var.create ? 1 : 0

  bucket                  = aws_s3_bucket.this[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  count = var.create ? 1 : 0

  bucket = aws_s3_bucket.this[0].id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  count = var.create ? 1 : 0

  bucket = aws_s3_bucket.this[0].id

  # An interrupted part-by-part copy (UploadPartCopy) leaves an incomplete multipart upload;
  # ferry aborts it on failure, this rule catches what a crash leaves behind.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  count = var.create ? 1 : 0

  bucket = aws_s3_bucket.this[0].id
  policy = data.aws_iam_policy_document.tls_only.json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

data "aws_iam_policy_document" "tls_only" {
  # A Deny: the wildcard only takes rights away (every S3 action over plain HTTP), it grants none.
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      local.arn,
      "${local.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
