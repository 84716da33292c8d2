#!/usr/bin/env python3
"""The peer side of `scripts/bench s3`: the same transfers with boto3.

Reads BENCH_ENDPOINT, BENCH_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
BENCH_SIZE (single-stream object bytes), BENCH_PAR_SIZE (each of 8 objects),
BENCH_SMALL_COUNT and BENCH_SMALL_SIZE (small objects moved one after the
other) and prints one JSON object of MB/s figures (objects/s for the small ones).
"""
import concurrent.futures as cf
import json
import os
import time

import boto3
from botocore.config import Config

MB = 1_000_000
endpoint = os.environ["BENCH_ENDPOINT"]
bucket = os.environ["BENCH_BUCKET"]
size = int(os.environ["BENCH_SIZE"])
par_size = int(os.environ["BENCH_PAR_SIZE"])
cfg = Config(
    s3={"addressing_style": "path"},
    signature_version="s3v4",
    max_pool_connections=16,
    request_checksum_calculation="when_required",
    response_checksum_validation="when_required",
    retries={"max_attempts": 3},
)
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=os.environ.get("BENCH_REGION", "us-east-1"), config=cfg)
block = bytes(os.urandom(8 * 1024 * 1024))


def body(n):
    reps = n // len(block)
    return block * reps + block[: n - reps * len(block)]


def get(key):
    stream = s3.get_object(Bucket=bucket, Key=key)["Body"]
    total = 0
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            return total
        total += len(chunk)


def timed(fn):
    t = time.perf_counter()
    n = fn()
    return n / MB / (time.perf_counter() - t)


big = body(size)
out = {"put_1": timed(lambda: (s3.put_object(Bucket=bucket, Key="bench/boto3-1", Body=big), size)[1])}
del big
out["get_1"] = timed(lambda: get("bench/boto3-1"))
small = body(par_size)
with cf.ThreadPoolExecutor(8) as pool:
    def put8():
        list(pool.map(lambda i: s3.put_object(Bucket=bucket, Key=f"bench/boto3-8-{i}", Body=small), range(8)))
        return 8 * par_size
    out["put_8"] = timed(put8)
    out["get_8"] = timed(lambda: sum(pool.map(lambda i: get(f"bench/boto3-8-{i}"), range(8))))
small_count = int(os.environ["BENCH_SMALL_COUNT"])
small = os.urandom(int(os.environ["BENCH_SMALL_SIZE"]))
t = time.perf_counter()
for i in range(small_count):
    s3.put_object(Bucket=bucket, Key=f"bench/boto3-s/{i}", Body=small)
out["put_small"] = small_count / (time.perf_counter() - t)
t = time.perf_counter()
for i in range(small_count):
    s3.get_object(Bucket=bucket, Key=f"bench/boto3-s/{i}")["Body"].read()
out["get_small"] = small_count / (time.perf_counter() - t)
print(json.dumps(out))
