terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.40"
    }
  }

  # Partially configured: each stage's settings come from stages/<stage>.tfbackend
  # (`terraform init -reconfigure -backend-config=stages/<stage>.tfbackend`, as `make plan` runs
  # it), so one root keeps one state per stage. Local by default (state/<stage>.tfstate,
  # git-ignored); for a shared state change this to `backend "s3" {}` and put bucket, key, region
  # and use_lockfile in the .tfbackend files (terraform/README.md).
  backend "local" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project   = "ferry"
      Stage     = var.stage
      ManagedBy = "terraform"
    }
  }
}
