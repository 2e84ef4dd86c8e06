#!/usr/bin/env python3
"""Parses CEF records with `cefp` (PyPI), an independent parser that unescapes correctly, so the
Rust tests can check that our records read back to exactly the values we meant.

Reads raw records from stdin, one per line (LF-terminated UTF-8, the way a line-based SIEM
transport frames them: a record with a raw line break would arrive as two and fail). Prints
one JSON line per record, flushed at once so a test can keep one process and ask record by
record:
  {"ok": true, "version", "vendor", "product", "device_version", "class_id", "name",
   "severity", "extension": {key: value}, "pairs": [[key, value], ...]}
  {"ok": false, "error": "..."}
`pairs` comes from cefp's own tokenizer before it builds the dict, so a duplicated key or a
stray token (an injected `k=v`, a value with no key) is visible rather than silently merged.
"""
import json
import sys

import cefp


def _raw_tokens(ext):
    # cefp.CEFParser.splitext is the tokenizer wrapped by two decorators (list, then dict);
    # functools.wraps keeps the undecorated generator reachable.
    gen = cefp.CEFParser.__dict__["splitext"].__func__.__wrapped__.__wrapped__
    return list(gen(cefp.CEFParser, ext))


def parse(record):
    parsed = cefp.parse(record)
    fields = cefp.CEFParser.split(record)
    tokens = _raw_tokens(fields[7].lstrip())
    if len(tokens) % 2:
        raise ValueError("odd number of extension tokens: %r" % tokens)
    device = parsed["device"]
    return {
        "ok": True,
        "version": parsed["version"],
        "vendor": device["vendor"],
        "product": device["product"],
        "device_version": device["version"],
        "class_id": device["event_class_id"],
        "name": parsed["name"],
        "severity": parsed["severity"],
        "extension": parsed["extension"],
        "pairs": [[tokens[i], tokens[i + 1]] for i in range(0, len(tokens), 2)],
    }


def main():
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            break
        try:
            out = parse(line.rstrip(b"\n").decode("utf-8"))
        except Exception as exc:  # report, never die: the test prints the record
            out = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
