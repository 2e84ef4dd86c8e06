#!/usr/bin/env python3
"""An OTLP/HTTP logs receiver for end-to-end tests of the `otlp` sink, parsing each request with
the official generated classes (the `opentelemetry-proto` package), not with auditrelay's code.

    otlp_receiver.py --port 0 --out FILE [--fail-first N] [--reject-per-request K]

Binds 127.0.0.1 only, prints `listening <port>` once ready. Each POST body is gunzipped when
`Content-Encoding: gzip`, parsed as `ExportLogsServiceRequest` (protobuf for
`application/x-protobuf`, OTLP/JSON via `google.protobuf.json_format` for `application/json`),
and one JSON line per request is appended to FILE before answering:
{"content_type", "content_encoding", "authorization", "status", "resource_logs": [{"resource": {...},
"scopes": [{"name", "version", "records": [{"event_name", "severity_number", "body",
"attributes": {...}, "time_unix_nano"}]}]}]}.
The first N requests are answered 503 with `Retry-After: 0`; with K > 0 every successful answer
carries `partial_success.rejected_log_records = K`.
"""
import argparse
import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def describe(request):
    out = []
    for rl in request.resource_logs:
        scopes = []
        for sl in rl.scope_logs:
            scopes.append(
                {
                    "name": sl.scope.name,
                    "version": sl.scope.version,
                    "records": [
                        {
                            "event_name": r.event_name,
                            "severity_number": r.severity_number,
                            "severity_text": r.severity_text,
                            "body": any_value(r.body),
                            "attributes": attributes(r.attributes),
                            "time_unix_nano": str(r.time_unix_nano),
                        }
                        for r in sl.log_records
                    ],
                }
            )
        out.append({"resource": attributes(rl.resource.attributes), "scopes": scopes})
    return out


def make_handler(args, lock, state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            content_type = (self.headers.get("content-type") or "").split(";")[0].strip()
            encoding = self.headers.get("content-encoding") or ""
            record = {
                "content_type": content_type,
                "content_encoding": encoding,
                "authorization": self.headers.get("authorization"),
            }
            with lock:
                state["requests"] += 1
                failing = state["requests"] <= args.fail_first
            status = 503 if failing else 200
            try:
                if encoding == "gzip":
                    body = gzip.decompress(body)
                request = ExportLogsServiceRequest()
                if content_type == "application/x-protobuf":
                    request.ParseFromString(body)
                elif content_type == "application/json":
                    json_format.Parse(body.decode("utf-8"), request)
                else:
                    raise ValueError(f"unexpected content type {content_type!r}")
                record["resource_logs"] = describe(request)
            except Exception as exc:  # a body the official classes cannot read fails the test
                record["error"] = f"{type(exc).__name__}: {exc}"
                status = 400
            record["status"] = status
            with lock, open(args.out, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
            response = ExportLogsServiceResponse()
            if status == 200 and args.reject_per_request > 0:
                response.partial_success.rejected_log_records = args.reject_per_request
                response.partial_success.error_message = "records over the quota"
            if content_type == "application/json":
                payload = json_format.MessageToJson(response).encode()
            else:
                payload = response.SerializeToString()
            self.send_response(status)
            self.send_header("content-type", content_type or "application/x-protobuf")
            if status == 503:
                self.send_header("retry-after", "0")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, fmt, *a):
            sys.stderr.write("otlp_receiver: " + (fmt % a) + "\n")

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--reject-per-request", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args, threading.Lock(), {"requests": 0}))
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
