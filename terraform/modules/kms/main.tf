# One customer managed key for everything ferry stores: the state and target tables, the queues,
# the target and artifacts buckets, the log groups, the Glue security configuration and the
# Lambdas' environment. Rotated yearly by KMS.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
}

resource "aws_kms_key" "this" {
  description             = "ferry ${var.name}: tables, queues, buckets, logs, Glue and Lambda environment"
  enable_key_rotation     = true
  deletion_window_in_days = var.deletion_window_in_days
  policy                  = data.aws_iam_policy_document.this.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "this" {
  #checkov:skip=CKV_AWS_109:Key policy: the account root must keep administering its own key (PutKeyPolicy, CreateGrant); "*" in a key policy is this key only.
  #checkov:skip=CKV_AWS_111:Key policy: "*" in a key policy is this key only, and the principals are the account root and two service principals.
  #checkov:skip=CKV_AWS_356:Key policy: the resource of a key policy statement is always "*", which means this key.

  # Key policy: "*" means this key. The account root administers the key and may delegate its
  # use through IAM policies (ferry's roles get exactly the key ARN that way). Actions are
  # listed one by one rather than kms:*.
  statement {
    sid    = "AccountRootAdministersAndDelegates"
    effect = "Allow"
    actions = [
      "kms:CancelKeyDeletion",
      "kms:CreateAlias",
      "kms:CreateGrant",
      "kms:Decrypt",
      "kms:DeleteAlias",
      "kms:DescribeKey",
      "kms:DisableKey",
      "kms:DisableKeyRotation",
      "kms:EnableKey",
      "kms:EnableKeyRotation",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:ListAliases",
      "kms:ListGrants",
      "kms:ListKeyPolicies",
      "kms:ListKeyRotations",
      "kms:ListResourceTags",
      "kms:PutKeyPolicy",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
      "kms:RetireGrant",
      "kms:RevokeGrant",
      "kms:RotateKeyOnDemand",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:UpdateAlias",
      "kms:UpdateKeyDescription",
    ]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # Key policy: "*" means this key. CloudWatch Logs encrypts ferry's log groups (Lambda and Glue)
  # with it, only in log groups of this account and region (encryption context condition).
  statement {
    sid    = "CloudWatchLogsEncryptsLogGroups"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:*"]
    }
  }

  # Key policy: "*" means this key. EventBridge delivers S3 object events (and failed deliveries)
  # to the KMS-encrypted events queue and its dead-letter queue, which needs the key to encrypt
  # the message; SQS calls KMS on EventBridge's behalf.
  statement {
    sid    = "EventBridgeSendsToEncryptedQueues"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
  }
}
