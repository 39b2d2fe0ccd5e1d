# The bucket the table backfill job's point-in-time exports go to (backfill.read: export), created
# when the spec names none (backfill.export_bucket), as `ferry init` does on the quick path
# (ferry/tables/export.py ensure_export_bucket): private, encrypted, and exports expire after
# expiry_days. The job reads an export back (its manifests and data files) and ImportTable
# (backfill.write: import) loads it; nothing else needs it once the copy has completed.
resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Holds only DynamoDB's exports of the source tables, deleted after a week; the exports are recorded by DynamoDB (ListExports) and CloudTrail, a separate access-log bucket adds nothing.
  #checkov:skip=CKV_AWS_144:An export is read once, in this region, by the copy that made it; a replica in another region has no use.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to a new export: the job that requested it waits for DescribeExport and reads the files itself.
  bucket = var.name
  tags   = var.tags
}

# Versioned as every ferry bucket is; replaced and expired versions are deleted a day later.
resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

# The default for writes that name no encryption: ferry's exports ask for SSE-S3 (AES256) themselves.
resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  # The same rules as `ferry init`'s: an incomplete upload is aborted after a day, an export is
  # deleted expiry_days after it was written.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "ferry-expire-exports"
    status = "Enabled"

    filter {
      prefix = "${var.prefix}/"
    }

    expiration {
      days = var.expiry_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  # With versioning, expiring an export leaves a delete marker; this removes it once it is alone.
  rule {
    id     = "remove-expired-delete-markers"
    status = "Enabled"

    filter {
      prefix = "${var.prefix}/"
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.this.json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

data "aws_iam_policy_document" "this" {
  # A Deny: the wildcard only takes rights away (every S3 action over plain HTTP), it grants none.
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this.arn,
      "${aws_s3_bucket.this.arn}/*",
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

  # Cross-account: DynamoDB writes an export with the rights of the role that requested it, the
  # source role in the source's account (AWS: "Requesting a table export in DynamoDB").
  dynamic "statement" {
    for_each = length(var.writer_role_arns) > 0 ? [var.writer_role_arns] : []
    content {
      sid    = "SourceRoleWritesExports"
      effect = "Allow"
      actions = [
        "s3:AbortMultipartUpload",
        "s3:PutObject",
        "s3:PutObjectAcl",
      ]
      resources = ["${aws_s3_bucket.this.arn}/${var.prefix}/*"]

      principals {
        type        = "AWS"
        identifiers = statement.value
      }
    }
  }

  # Cross-account: ImportTable reads the export with the rights of the role that requested it, the
  # target role (AWS: "Requesting a table import in DynamoDB").
  dynamic "statement" {
    for_each = length(var.reader_role_arns) > 0 ? [var.reader_role_arns] : []
    content {
      sid    = "TargetRoleReadsExports"
      effect = "Allow"
      actions = [
        "s3:GetObject",
        "s3:ListBucket",
      ]
      resources = [
        aws_s3_bucket.this.arn,
        "${aws_s3_bucket.this.arn}/${var.prefix}/*",
      ]

      principals {
        type        = "AWS"
        identifiers = statement.value
      }
    }
  }
}
