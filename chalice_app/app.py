"""ferry's Lambdas. Each handler is wiring: the logic lives in the ferry core (vendor/ferry)."""

from typing import Any

from chalice import Chalice
from chalicelib import bucket_events as bucket_events_handler
from chalicelib import table_stream as table_stream_handler

app = Chalice(app_name="ferry")


# @app.lambda_function, not on_dynamodb_record: the event-source mapping (partial batch responses,
# bisect, finite retries, record age, on-failure destination) is owned by Terraform / make deploy.
@app.lambda_function(name="table_stream")
def table_stream(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return table_stream_handler.handle(event, context)


# @app.lambda_function, not on_sqs_message: the SQS event-source mapping (ReportBatchItemFailures,
# batch size) and the queue with its dead-letter redrive are owned by Terraform / make deploy.
@app.lambda_function(name="bucket_events")
def bucket_events(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return bucket_events_handler.handle(event, context)
