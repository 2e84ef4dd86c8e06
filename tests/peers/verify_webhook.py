#!/usr/bin/env python3
"""Verifies Standard Webhooks signatures with the reference `standardwebhooks` library, so our
signing is checked by code we did not write.

Reads JSON lines on stdin: {"secret": "whsec_...", "headers": {...}, "body": "<string>"}
Prints one line per input: `ok` or `fail: <error>`. Exits 0 unless stdin is not JSON lines.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook


def verify(item):
    try:
        # json_parse=False: we check the signature only; the body need not be JSON.
        Webhook(item["secret"]).verify(item["body"], item["headers"], json_parse=False)
        return "ok"
    except Exception as exc:  # the library raises non-WebhookVerificationError too (bad base64)
        return "fail: " + (str(exc) or type(exc).__name__).replace("\n", " ")


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        print(verify(json.loads(line)), flush=True)


if __name__ == "__main__":
    main()
