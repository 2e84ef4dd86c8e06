#!/usr/bin/env python3
"""Reads back what the `security_lake` sink wrote (crates/server/tests/it/security_lake.rs),
independently of our code: boto3 lists and gets every object of the bucket, pyarrow reads each
as Parquet, and every row is validated against the OCSF schema (`ocsf-json-schema` +
`jsonschema`, as tests/peers/validate_ocsf.py does).

usage: lake_read.py ENDPOINT BUCKET ACCESS_KEY_ID SECRET_ACCESS_KEY [OCSF_VERSION]   (default 1.8.0)

Prints one JSON document:
  {"objects": [{"key", "size", "class_uids": [distinct class_uid values],
                "columns": {top-level name: Arrow type}, "list_columns": [names of LIST columns],
                "leaf_paths": [Parquet leaf column paths, e.g. "resources.list.element.uid"],
                "rows": [each row as OCSF JSON], "errors": [schema errors, "<row>: <path>: <msg>"]}]}
A row becomes OCSF JSON the way the sink's documentation says to read it back: null members are
left out (Parquet has no "absent"), and the JSON text columns (`unmapped`) are parsed.
"""
import io
import json
import sys

import boto3
import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

JSON_COLUMNS = ("unmapped",)


def prune(value):
    if isinstance(value, dict):
        return {k: prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


def main():
    endpoint, bucket, key_id, secret = sys.argv[1:5]
    version = sys.argv[5] if len(sys.argv) > 5 else "1.8.0"
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version))
    validators = {}
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=key_id, aws_secret_access_key=secret)
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            key = item["Key"]
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            parquet = pq.ParquetFile(io.BytesIO(body))
            table = parquet.read()
            columns = {f.name: str(f.type) for f in table.schema}
            list_columns = [f.name for f in table.schema if pa.types.is_list(f.type)]
            leaf_paths = [parquet.schema.column(i).path for i in range(len(parquet.schema))]
            rows, errors = [], []
            for n, raw in enumerate(table.to_pylist()):
                row = prune(raw)
                for name in JSON_COLUMNS:
                    if isinstance(row.get(name), str):
                        row[name] = json.loads(row[name])
                cls = schema.lookup_class_name_from_uid(row["class_uid"])
                if cls not in validators:
                    validators[cls] = jsonschema.Draft202012Validator(schema.get_class_schema(cls))
                errors.extend(
                    "%d: %s: %s" % (n, "/".join(str(p) for p in e.absolute_path) or "<root>", e.message)
                    for e in validators[cls].iter_errors(row)
                )
                rows.append(row)
            objects.append({
                "key": key,
                "size": len(body),
                "class_uids": sorted(set(table.column("class_uid").to_pylist())),
                "columns": columns,
                "list_columns": list_columns,
                "leaf_paths": leaf_paths,
                "rows": rows,
                "errors": errors,
            })
    json.dump({"objects": objects}, sys.stdout)


if __name__ == "__main__":
    main()
