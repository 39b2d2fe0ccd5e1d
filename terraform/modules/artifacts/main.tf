# The artifacts bucket: the Glue job scripts and ferry.zip (--extra-py-files), uploaded from the
# build. Versioned, so a running job keeps reading the version it started with.
resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Holds only build artifacts written by Terraform itself; uploads are recorded in the Terraform state and CloudTrail, a separate access-log bucket adds nothing.
  #checkov:skip=CKV_AWS_144:Artifacts are rebuilt and re-uploaded by `make deploy`; a replica in another region has no use.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to artifact uploads; Terraform is the only writer.
  bucket = var.name
  tags   = var.tags
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

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

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }
  }

  rule {
    id     = "expire-replaced-artifacts"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
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
}

# source_hash (not etag): objects are SSE-KMS encrypted, so their ETag is not the file's MD5; a
# changed file changes the hash and Terraform uploads it again.
resource "aws_s3_object" "this" {
  for_each = var.files

  bucket                 = aws_s3_bucket.this.id
  key                    = each.key
  source                 = each.value
  source_hash            = filemd5(each.value)
  server_side_encryption = "aws:kms"
  kms_key_id             = var.kms_key_arn
  bucket_key_enabled     = true
  tags                   = var.tags

  depends_on = [aws_s3_bucket_server_side_encryption_configuration.this]
}
