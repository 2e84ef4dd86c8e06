"""Reads a Kafka topic back with an independent client (confluent-kafka, i.e. librdkafka as
shipped in its wheel) and prints one JSON line per record: partition, offset, key, headers, value.

usage: kafka_read.py BOOTSTRAP TOPIC EXPECTED [IDLE_SECONDS]

Assigns every partition from the beginning (no consumer group, so nothing is committed) and
stops when EXPECTED records have arrived and no more came for a second, or when nothing arrived
for IDLE_SECONDS. Exit code 0 either way: the caller counts.
"""
import json
import sys
import time

from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING


def main():
    bootstrap, topic, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
    idle = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "auditrelay-verify",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    meta = c.list_topics(topic, timeout=10)
    parts = meta.topics[topic].partitions
    if not parts:
        sys.exit(f"topic {topic} has no partitions: {meta.topics[topic].error}")
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(parts)])
    seen = 0
    last = time.monotonic()
    out = sys.stdout
    while True:
        msg = c.poll(0.2)
        now = time.monotonic()
        if msg is None:
            if seen >= expected and now - last > 1.0:
                break
            if now - last > idle:
                break
            continue
        if msg.error():
            sys.stderr.write(f"consumer error: {msg.error()}\n")
            continue
        last = now
        seen += 1
        headers = {k: (v.decode() if v is not None else None) for k, v in (msg.headers() or [])}
        out.write(json.dumps({
            "partition": msg.partition(),
            "offset": msg.offset(),
            "key": msg.key().decode() if msg.key() is not None else None,
            "headers": headers,
            "value": msg.value().decode(),
        }) + "\n")
    c.close()


if __name__ == "__main__":
    main()
