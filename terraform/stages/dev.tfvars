# Sizing of the dev stage. `make plan STAGE=dev` passes this file after the generated
# stages/dev.ferry.tfvars.json (-var-file=... -var-file=...), so these values win over it.
stage = "dev"

glue_worker_type       = "G.1X"
glue_number_of_workers = 2

# Below the events queue's visibility timeout (the spec's s3.visibility_timeout, 120 s by
# default): a precondition on the bucket_events function enforces it.
lambda_timeout              = 90
lambda_memory_size          = 512
lambda_reserved_concurrency = 10
