"""Prepares a moto server for the AWS sink kinds' tests (crates/server/tests/it/aws_sinks.rs).

usage: aws_setup.py ENDPOINT

moto runs with INITIAL_NO_AUTH_ACTION_COUNT, so the first three calls here are unauthenticated:
create an IAM user, give it an Allow-* policy, create its access key. Everything else is made
WITH that key: a Kinesis stream `audit` (1 shard), an S3 bucket `firehose-out` and a Firehose
delivery stream `audit` writing into it, an SQS queue `audit-events`, an event bus `audit` and a
rule on it sending events with source `auditrelay` to the queue, and a role `relay` to assume. The CloudWatch Logs group is
left to the sink (`create_missing`). Prints {"access_key_id", "secret_access_key", "account"}.
"""
import json
import sys

import boto3

endpoint = sys.argv[1]
region = "us-east-1"

iam = boto3.client("iam", endpoint_url=endpoint, region_name=region,
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="auditrelay")
iam.put_user_policy(UserName="auditrelay", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="auditrelay")["AccessKey"]
creds = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


def client(name):
    return boto3.client(name, endpoint_url=endpoint, region_name=region, **creds)


client("kinesis").create_stream(StreamName="audit", ShardCount=1)
client("s3").create_bucket(Bucket="firehose-out")
# The security_lake kind's bucket in cloud_rates (each kind's rate against moto).
client("s3").create_bucket(Bucket="lake-rates")
client("firehose").create_delivery_stream(
    DeliveryStreamName="audit",
    DeliveryStreamType="DirectPut",
    ExtendedS3DestinationConfiguration={
        "RoleARN": "arn:aws:iam::123456789012:role/firehose",
        "BucketARN": "arn:aws:s3:::firehose-out",
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
    },
)
sqs = client("sqs")
queue_url = sqs.create_queue(QueueName="audit-events")["QueueUrl"]
queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
events = client("events")
events.create_event_bus(Name="audit")
events.put_rule(Name="to-queue", EventBusName="audit", EventPattern=json.dumps({"source": ["auditrelay"]}))
events.put_targets(Rule="to-queue", EventBusName="audit", Targets=[{"Id": "queue", "Arn": queue_arn}])
# A role the sinks can assume (STS AssumeRole with an external id), allowed everything.
iam_keyed = client("iam")
iam_keyed.create_role(RoleName="relay", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole",
     "Condition": {"StringEquals": {"sts:ExternalId": "ext-1"}}}]}))
iam_keyed.put_role_policy(RoleName="relay", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
account = client("sts").get_caller_identity()["Account"]
print(json.dumps({"access_key_id": creds["aws_access_key_id"],
                  "secret_access_key": creds["aws_secret_access_key"], "account": account}))
