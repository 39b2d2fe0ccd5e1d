"""Everything about migrating S3 buckets: object state, reconcile, events, backfill, verify."""
