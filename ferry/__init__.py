"""ferry: move live DynamoDB tables (and S3 buckets) without downtime or data loss.

This package is the pure core shared by the Glue jobs, the Chalice Lambdas and the CLI.
It imports only the standard library, boto3 and botocore.
"""

__version__ = "0.1.0"
