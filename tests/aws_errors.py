"""The one builder of botocore ClientErrors for tests that make AWS answer an error on purpose."""

from __future__ import annotations

from botocore.exceptions import ClientError


def client_error(code: str, status: int = 400, operation: str = "Op", message: str | None = None) -> ClientError:
    """What botocore raises when AWS answers ``status`` with the error ``code`` to ``operation``."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"injected {code}" if message is None else message},
            "ResponseMetadata": {
                "RequestId": "",
                "HostId": "",
                "HTTPStatusCode": status,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        operation,
    )
