#!/usr/bin/env python3
"""Exports log records with the real OpenTelemetry Python SDK (opentelemetry-sdk + the
unmodified OTLP/HTTP protobuf exporter), configured only through the SDK's standard
environment variables, as an application would be:

    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:PORT/otlp \
    OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20ark_..." \
    otel_export.py --count 5 --prefix run1 [--repeat-first] [--batch 50] [--acked FILE]

Each record i carries `event.id` = `<prefix>-<i>`, `event_name` `invoice.paid`, an actor
(`enduser.id`, `client.address`), `event.outcome`, a body and a custom attribute; the resource
has service.name/version/instance.id and one more attribute. With --acked, the exporter appends
the ids of every batch the server acknowledged (the SDK's SUCCESS result) to FILE, one per line,
fsync'd before the next export: what the durability test holds the server to.

Prints one JSON line at the end: {"exported": n_success_batches, "failed": n_failed_batches}.
"""
import argparse
import json
import os
import sys
import threading

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry._logs import SeverityNumber


class RecordingExporter(OTLPLogExporter):
    """The SDK's exporter, unchanged on the wire; only its results are written down."""

    def __init__(self, acked_path, **kwargs):
        super().__init__(**kwargs)
        self.acked_path = acked_path
        self.lock = threading.Lock()
        self.success = 0
        self.failed = 0

    def export(self, batch):
        result = super().export(batch)
        with self.lock:
            if result == LogRecordExportResult.SUCCESS:
                self.success += 1
                if self.acked_path:
                    with open(self.acked_path, "a", encoding="utf-8") as out:
                        for rec in batch:
                            attrs = rec.log_record.attributes or {}
                            out.write(str(attrs.get("event.id")) + "\n")
                        out.flush()
                        os.fsync(out.fileno())
                    # Written down first, then announced: a reader of this line may rely on the file.
                    print(f"acked {len(batch)}", flush=True)
            else:
                self.failed += 1
        return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--prefix", default="otel")
    ap.add_argument("--repeat-first", action="store_true")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--acked")
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args()

    resource = Resource.create(
        {
            "service.name": "billing",
            "service.version": "1.2.3",
            "service.instance.id": "billing-7f9c",
            "deployment.environment.name": "test",
        }
    )
    provider = LoggerProvider(resource=resource)
    exporter = RecordingExporter(args.acked, timeout=args.timeout)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(exporter, max_export_batch_size=args.batch, schedule_delay_millis=50)
    )
    logger = provider.get_logger("audit.billing", "0.9.1")

    def emit(i):
        logger.emit(
            event_name="Invoice.Paid",
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            body={"message": f"invoice {i} paid", "amount": i * 10},
            attributes={
                "event.id": f"{args.prefix}-{i}",
                "event.outcome": "success",
                "event.action": "pay",
                "enduser.id": f"usr_{i}",
                "client.address": "203.0.113.7",
                "invoice.number": i,
            },
        )

    for i in range(args.count):
        emit(i)
        if i == 0 and args.repeat_first:
            emit(0)
    ok = provider.force_flush(timeout_millis=int(args.timeout * 4000))
    provider.shutdown()
    print(json.dumps({"exported": exporter.success, "failed": exporter.failed, "flushed": ok}))
    sys.stdout.flush()
    return 0 if exporter.failed == 0 else 3


if __name__ == "__main__":
    sys.exit(main())
