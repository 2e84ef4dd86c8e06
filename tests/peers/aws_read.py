"""Reads back what the AWS sink kinds wrote into moto, with boto3.

usage: aws_read.py ENDPOINT KEY_ID SECRET WHAT NAME
  WHAT = logs      NAME = log group: {"streams": {stream: [message, ...]}} (GetLogEvents, from the head)
         kinesis   NAME = stream:    {"records": [{"partition_key", "data"}, ...]} (every shard from TRIM_HORIZON)
         s3        NAME = bucket:    {"objects": {key: text}}
         sqs       NAME = queue:     {"messages": [body, ...]} (received and deleted, until the queue is empty)
Prints one JSON object.
"""
import json
import sys

import boto3

endpoint, key_id, secret, what, name = sys.argv[1:6]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key_id, aws_secret_access_key=secret)

if what == "logs":
    logs = boto3.client("logs", **kw)
    out = {}
    for s in logs.describe_log_streams(logGroupName=name)["logStreams"]:
        stream, messages, token = s["logStreamName"], [], None
        while True:
            args = dict(logGroupName=name, logStreamName=stream, startFromHead=True)
            if token:
                args["nextToken"] = token
            page = logs.get_log_events(**args)
            messages += [e["message"] for e in page["events"]]
            if not page["events"] or page.get("nextForwardToken") == token:
                break
            token = page.get("nextForwardToken")
        out[stream] = messages
    print(json.dumps({"streams": out}))
elif what == "kinesis":
    kinesis = boto3.client("kinesis", **kw)
    records = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = kinesis.get_records(ShardIterator=it, Limit=10000)
            records += [{"partition_key": r["PartitionKey"], "data": r["Data"].decode()} for r in page["Records"]]
            if not page["Records"]:
                break
            it = page.get("NextShardIterator")
    print(json.dumps({"records": records}))
elif what == "s3":
    s3 = boto3.client("s3", **kw)
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for o in page.get("Contents", []):
            objects[o["Key"]] = s3.get_object(Bucket=name, Key=o["Key"])["Body"].read().decode()
    print(json.dumps({"objects": objects}))
elif what == "sqs":
    sqs = boto3.client("sqs", **kw)
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    messages = []
    while True:
        page = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        batch = page.get("Messages", [])
        if not batch:
            break
        messages += [m["Body"] for m in batch]
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
    print(json.dumps({"messages": messages}))
else:
    sys.exit(f"unknown WHAT {what}")
