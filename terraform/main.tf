# ferry's deployment, the one root for every stage: everything is in modules/ferry; this root only
# configures the provider and the backend (versions.tf) and passes every variable through.
# A stage is two files in stages/: <stage>.tfvars (its committed sizing) and <stage>.tfbackend
# (where its state lives). `make plan STAGE=<stage>` writes stages/<stage>.ferry.tfvars.json
# (`ferry tfvars`) and passes both variable files, the committed sizing last so that it wins.
module "ferry" {
  source = "./modules/ferry"

  stage                       = var.stage
  region                      = var.region
  spec_json                   = var.spec_json
  state_table_name            = var.state_table_name
  source_role_arn             = var.source_role_arn
  target_role_arn             = var.target_role_arn
  tables                      = var.tables
  buckets                     = var.buckets
  stream_mapping              = var.stream_mapping
  stream_failure_queue_name   = var.stream_failure_queue_name
  bucket_events               = var.bucket_events
  reverse                     = var.reverse
  backfill                    = var.backfill
  lambda_package              = var.lambda_package
  ferry_zip                   = var.ferry_zip
  glue_scripts_dir            = var.glue_scripts_dir
  glue_version                = var.glue_version
  glue_worker_type            = var.glue_worker_type
  glue_number_of_workers      = var.glue_number_of_workers
  lambda_memory_size          = var.lambda_memory_size
  lambda_timeout              = var.lambda_timeout
  lambda_reserved_concurrency = var.lambda_reserved_concurrency
  kms_key_arn                 = var.kms_key_arn
  alarm_actions               = var.alarm_actions
  iterator_age_alarm_seconds  = var.iterator_age_alarm_seconds
  log_retention_days          = var.log_retention_days
  tags                        = var.tags
}
