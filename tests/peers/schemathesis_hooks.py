"""Hooks for schemathesis (crates/server/tests/schema_fuzz.rs sets SCHEMATHESIS_HOOKS to this file).

The API reference documents an `application/x-ndjson` body of `POST /v1/events` as the array of
its lines (OpenAPI 3.1 has no item schema for a request stream); this writes such an array the
way a client sends NDJSON: one JSON value per line.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return value
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode("utf-8")
