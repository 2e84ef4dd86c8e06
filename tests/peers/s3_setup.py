"""Prepares a moto S3 server for the s3 sink's tests (crates/sinks/tests/s3.rs).

usage: s3_setup.py ENDPOINT BUCKET [--no-iam]

Default: moto runs with INITIAL_NO_AUTH_ACTION_COUNT, so the first calls here are made without
authentication: create an IAM user, give it an Allow-* policy, create its access key; then the
bucket is created WITH that key (SigV4-checked from then on). Prints {"access_key_id": ...,
"secret_access_key": ...} as JSON.
--no-iam: moto runs without signature checks; only the bucket is created (fixed dummy keys).
"""
import json
import sys

import boto3

endpoint, bucket = sys.argv[1], sys.argv[2]
region = "us-east-1"

if "--no-iam" in sys.argv[3:]:
    creds = {"access_key_id": "AKIATESTNOAUTH", "secret_access_key": "any-secret"}
else:
    iam = boto3.client("iam", endpoint_url=endpoint, region_name=region,
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="auditrelay")
    iam.put_user_policy(UserName="auditrelay", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="auditrelay")["AccessKey"]
    creds = {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}

s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                  aws_access_key_id=creds["access_key_id"], aws_secret_access_key=creds["secret_access_key"])
s3.create_bucket(Bucket=bucket)
print(json.dumps(creds))
