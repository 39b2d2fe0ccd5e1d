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


# Reverse replication (ferry reverse, docs/adr/0009): the same handlers, the spec reversed. Their
# mappings and the reverse events queue exist only where Terraform has reverse = true.
@app.lambda_function(name="table_stream_reverse")
def table_stream_reverse(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return table_stream_handler.handle_reverse(event, context)


@app.lambda_function(name="bucket_events_reverse")
def bucket_events_reverse(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return bucket_events_handler.handle_reverse(event, context)
