"""An S3-compatible server for the tests: moto on 127.0.0.1 and a free port; with --iam,
requests must be signed by a user the server knows. Prints one JSON line (port, the keys of a user allowed
every S3 action and of one allowed nothing), serves until stdin closes.

Usage: python3 tests/s3/moto_server.py [--iam] BUCKET [BUCKET...]

Moto's signature check rejects query values holding '/' (ListObjectsV2 with prefix=dir/,
boto3's own requests too), so --iam servers only serve objects at a bucket's root.
"""
import json
import os
import sys

# Requests after these are checked against IAM: the set-up below makes exactly this many.
SETUP_CALLS = 5
IAM = sys.argv[1:2] == ["--iam"]
BUCKETS = sys.argv[2:] if IAM else sys.argv[1:]
if IAM:
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(SETUP_CALLS + len(BUCKETS))

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
endpoint = f"http://127.0.0.1:{port}"
setup = dict(endpoint_url=endpoint, region_name="us-east-1",
             aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **setup)
iam.create_user(UserName="augur")
iam.put_user_policy(UserName="augur", PolicyName="all-s3", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}))
key = iam.create_access_key(UserName="augur")["AccessKey"]
iam.create_user(UserName="nobody")
nobody = iam.create_access_key(UserName="nobody")["AccessKey"]
s3 = boto3.client("s3", **setup)
for bucket in BUCKETS:
    s3.create_bucket(Bucket=bucket)
print(json.dumps({
    "port": port,
    "endpoint": endpoint,
    "access_key_id": key["AccessKeyId"],
    "secret_access_key": key["SecretAccessKey"],
    "denied_key_id": nobody["AccessKeyId"],
    "denied_secret": nobody["SecretAccessKey"],
}), flush=True)
sys.stdin.read()
server.stop()
