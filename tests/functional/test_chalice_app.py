"""The Chalice app as Lambda sees it: the function is registered under its documented name and
is wiring only — configuration from FERRY_SPEC, clients built on first use, not at import."""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from ferry.spec import parse_spec, spec_to_dict

pytestmark = pytest.mark.functional


def test_table_stream_is_a_plain_lambda_function_and_import_builds_no_client(monkeypatch):
    monkeypatch.delenv("FERRY_SPEC", raising=False)
    for name in ("app", "chalicelib", "chalicelib.table_stream", "chalicelib.bucket_events"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    app_module = importlib.import_module("app")  # Chalice imports it like this while packaging
    functions = {f.name: f.handler_string for f in app_module.app.pure_lambda_functions}
    assert functions == {
        "table_stream": "app.table_stream",
        "bucket_events": "app.bucket_events",
        "table_stream_reverse": "app.table_stream_reverse",
        "bucket_events_reverse": "app.bucket_events_reverse",
    }
    from chalicelib import bucket_events, table_stream

    assert not table_stream._replicators  # nothing built at import
    assert not bucket_events._replicators


def test_an_empty_batch_answers_an_empty_partial_response(monkeypatch, emulator):
    from chalicelib import table_stream

    spec = parse_spec(
        {"region": "us-east-1", "endpoint_url": emulator.endpoint_url, "tables": [{"source": "aaa", "target": "bbb"}]}
    )
    monkeypatch.setenv("FERRY_SPEC", json.dumps(spec_to_dict(spec)))
    table_stream.reset()
    sys.modules.pop("app", None)
    app_module = importlib.import_module("app")
    assert app_module.table_stream({"Records": []}, None) == {"batchItemFailures": []}
