terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.40"
    }
  }

  # State is local (terraform.tfstate next to this file, git-ignored). For a shared deployment
  # add a backend "s3" block here and pass its settings to `terraform init -backend-config=...`.
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
