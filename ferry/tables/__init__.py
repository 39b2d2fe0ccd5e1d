"""Everything about migrating DynamoDB tables: protocol, state, replication, backfill, verify."""
