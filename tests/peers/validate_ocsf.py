#!/usr/bin/env python3
"""Validates OCSF events against the real OCSF schema: `ocsf-json-schema` (PyPI) turns the
exported OCSF schema it bundles into JSON Schema (including the `at_least_one` constraints, as
`anyOf`), and `jsonschema` checks each event against its class.

Usage: validate_ocsf.py [schema-version]   (default 1.8.0)
Reads one JSON event per line on stdin; prints one JSON line per event, flushed at once:
  {"ok": true, "class": "api_activity", "errors": []}
  {"ok": false, "class": "...", "errors": ["<path>: <message>", ...]}
No profiles are applied, so profile-only attributes (cloud, osint, …) are neither required nor
allowed, and objects reject attributes the schema does not define.
"""
import json
import sys

import jsonschema
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema


def main():
    version = sys.argv[1] if len(sys.argv) > 1 else "1.8.0"
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version))
    validators = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        cls = None
        try:
            event = json.loads(line)
            cls = schema.lookup_class_name_from_uid(event["class_uid"])
            if cls not in validators:
                class_schema = schema.get_class_schema(cls)
                jsonschema.Draft202012Validator.check_schema(class_schema)
                validators[cls] = jsonschema.Draft202012Validator(class_schema)
            errors = sorted(
                "%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "<root>", e.message)
                for e in validators[cls].iter_errors(event)
            )
            out = {"ok": not errors, "class": cls, "errors": errors}
        except Exception as exc:
            out = {"ok": False, "class": cls, "errors": ["%s: %s" % (type(exc).__name__, exc)]}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
