# One target table, mirroring the source's keys, indexes, billing mode and TTL (the same shape
# `ferry init` would create). With create = false nothing is created: an existing target is only
# referenced, by name and ARN, so Terraform never changes a table it does not own.
data "aws_caller_identity" "current" {}

locals {
  provisioned = var.billing_mode == "PROVISIONED"
}

resource "aws_dynamodb_table" "this" {
  #checkov:skip=CKV2_AWS_16:Capacity mirrors the source table (from `ferry tfvars`); auto scaling a PROVISIONED target is the owner's decision after the migration, PAY_PER_REQUEST needs none.
  count = var.create ? 1 : 0

  name                        = var.name
  billing_mode                = var.billing_mode
  hash_key                    = var.hash_key
  range_key                   = var.range_key
  read_capacity               = local.provisioned ? var.read_capacity : null
  write_capacity              = local.provisioned ? var.write_capacity : null
  deletion_protection_enabled = var.deletion_protection_enabled

  dynamic "attribute" {
    for_each = { for a in var.attributes : a.name => a }
    content {
      name = attribute.value.name
      type = attribute.value.type
    }
  }

  dynamic "global_secondary_index" {
    for_each = { for i in var.global_secondary_indexes : i.name => i }
    content {
      name               = global_secondary_index.value.name
      hash_key           = global_secondary_index.value.hash_key
      range_key          = global_secondary_index.value.range_key
      projection_type    = global_secondary_index.value.projection_type
      non_key_attributes = global_secondary_index.value.projection_type == "INCLUDE" ? global_secondary_index.value.non_key_attributes : null
      read_capacity      = local.provisioned ? coalesce(global_secondary_index.value.read_capacity, var.read_capacity) : null
      write_capacity     = local.provisioned ? coalesce(global_secondary_index.value.write_capacity, var.write_capacity) : null
    }
  }

  dynamic "local_secondary_index" {
    for_each = { for i in var.local_secondary_indexes : i.name => i }
    content {
      name               = local_secondary_index.value.name
      range_key          = local_secondary_index.value.range_key
      projection_type    = local_secondary_index.value.projection_type
      non_key_attributes = local_secondary_index.value.projection_type == "INCLUDE" ? local_secondary_index.value.non_key_attributes : null
    }
  }

  dynamic "ttl" {
    for_each = var.ttl_attribute == null ? [] : [var.ttl_attribute]
    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags

  lifecycle {
    # The stream is ferry's: `ferry reverse` enables it (NEW_AND_OLD_IMAGES) through the API for reverse
    # replication during the switch (docs/adr/0009); an apply must not disable it again.
    ignore_changes = [stream_enabled, stream_view_type]

    # The table is created in the account Terraform deploys to; its ARN (from `ferry tfvars`, in
    # the target role's account) must be in that account, or every IAM statement would miss it.
    precondition {
      condition     = split(":", var.arn)[4] == data.aws_caller_identity.current.account_id
      error_message = "target table ${var.name}: ${var.arn} is not in the account Terraform deploys to; a target in another account must already exist (create_target = false)."
    }
  }
}
