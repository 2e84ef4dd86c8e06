"""Reads back what the s3 sink wrote, with boto3 (an independent S3 client).

usage: s3_read.py ENDPOINT BUCKET ACCESS_KEY_ID SECRET_ACCESS_KEY

Prints one JSON object per line, in key order: {"key": ..., "content_type": ..., "content_encoding":
..., "lines": [each line of the object, decompressed when the key ends in .gz or .zst]}.
"""
import gzip
import json
import sys

import boto3
import zstandard

endpoint, bucket, key_id, secret = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=key_id, aws_secret_access_key=secret)
keys = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
    keys.extend(o["Key"] for o in page.get("Contents", []))
for key in sorted(keys):
    obj = s3.get_object(Bucket=bucket, Key=key)
    body = obj["Body"].read()
    if key.endswith(".gz"):
        body = gzip.decompress(body)
    elif key.endswith(".zst"):
        body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    text = body.decode("utf-8")
    assert text.endswith("\n"), f"{key}: object does not end with a newline"
    print(json.dumps({
        "key": key,
        "content_type": obj.get("ContentType"),
        "content_encoding": obj.get("ContentEncoding"),
        "lines": text[:-1].split("\n"),
    }))
