# Sizing of the prod stage. `make plan STAGE=prod` passes this file after the generated
# stages/prod.ferry.tfvars.json (-var-file=... -var-file=...), so these values win over it.
stage = "prod"

glue_worker_type       = "G.1X"
glue_number_of_workers = 10

# Below the events queue's visibility timeout (the spec's s3.visibility_timeout, 120 s by
# default): a precondition on the bucket_events function enforces it.
lambda_timeout              = 90
lambda_memory_size          = 1024
lambda_reserved_concurrency = 100
