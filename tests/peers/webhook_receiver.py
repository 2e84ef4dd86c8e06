#!/usr/bin/env python3
"""A Standard Webhooks receiver for end-to-end tests, verifying with the reference library.

    webhook_receiver.py --port 0 --secret whsec_... --out FILE

Binds 127.0.0.1 only, prints `listening <port>` once ready, answers each POST 204 when the
signature verifies and 400 (body = the error) when not, and appends one JSON line per request to
FILE: {"verified", "error", "webhook_id", "event_ids", "offsets"}.
"""
import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


def make_handler(secret, out_path, lock):
    webhook = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 so the sender's keep-alive connections are exercised as in production.
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {k: v for k, v in self.headers.items()}
            error = None
            try:
                webhook.verify(body, headers, json_parse=False)
            except Exception as exc:  # bad base64 raises binascii.Error, not WebhookVerificationError
                error = str(exc) or type(exc).__name__
            event_ids, offsets = [], []
            try:
                for ev in json.loads(body).get("events", []):
                    event_ids.append(ev.get("id"))
                    offsets.append(ev.get("offset"))
            except (ValueError, AttributeError):
                pass
            record = {
                "verified": error is None,
                "error": error,
                "webhook_id": headers.get("webhook-id") or headers.get("Webhook-Id"),
                "event_ids": event_ids,
                "offsets": offsets,
            }
            # Append before answering: a test that saw the response can read the line at once.
            with lock, open(out_path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
            if error is None:
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()
            else:
                payload = error.encode()
                self.send_response(400)
                self.send_header("content-type", "text/plain; charset=utf-8")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        def log_message(self, fmt, *args):  # keep stdout for the `listening` line only
            sys.stderr.write("webhook_receiver: " + (fmt % args) + "\n")

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.secret, args.out, threading.Lock()))
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
