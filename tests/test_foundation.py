"""The foundation's real servers: HDFS through WebHDFS and Spark's hdfs:// reader, and Redis."""
import json
import uuid

import pytest
import redis

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark"), pytest.mark.heavy(8)]


def test_webhdfs_write_read_list_delete(hdfs_client, hdfs_user):
    folder = f"/user/{hdfs_user}/foundation-{uuid.uuid4().hex[:8]}"
    hdfs_client.write(f"{folder}/hello.txt", data=b"hello hdfs\n")
    with hdfs_client.read(f"{folder}/hello.txt") as reader:
        assert reader.read() == b"hello hdfs\n"
    assert hdfs_client.list(folder) == ["hello.txt"]
    assert hdfs_client.delete(folder, recursive=True)
    assert hdfs_client.status(folder, strict=False) is None


def test_spark_counts_jsonl_rows_on_hdfs(spark, hdfs_client, hdfs_fs, hdfs_user):
    folder = f"/user/{hdfs_user}/foundation-{uuid.uuid4().hex[:8]}"
    rows = [{"user": u, "track": u * 7} for u in range(123)]
    hdfs_client.write(f"{folder}/events.jsonl",
                      data="".join(json.dumps(r) + "\n" for r in rows).encode())
    try:
        frame = spark.read.json(f"{hdfs_fs}{folder}/events.jsonl")
        assert frame.count() == 123
        assert frame.agg({"track": "sum"}).first()[0] == sum(r["track"] for r in rows)
    finally:
        hdfs_client.delete(folder, recursive=True)


def test_redis_round_trip(redis_url):
    client = redis.Redis.from_url(redis_url)
    key = f"foundation:{uuid.uuid4().hex}"
    client.set(key, "botify", ex=60)
    assert client.get(key) == b"botify"
    assert client.delete(key) == 1
    assert client.get(key) is None
