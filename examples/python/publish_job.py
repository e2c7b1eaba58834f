"""Publishes create-user jobs to the provisioner, each confirmed by the broker.

    python3 publish_job.py job.json [--amqp URL] [--exchange provisioning.jobs]

The file holds one job (a JSON object), a JSON array of jobs, or one job per line. Each job
goes to the topic exchange `provisioning.jobs` with routing key `create_user.<vendor>`,
persistent, `message_id` = its `job_id`, and `mandatory`, on a channel in confirm mode: a job
counts as sent only once the broker confirmed it, and a job no queue took (the service never
started, or a wrong vendor) comes back as returned instead of vanishing. Publishing a job
again is safe: its `job_id` is the idempotency key, so it ends `existing`.

Prints `confirmed <job_id>` or `returned <job_id>: <reason>` per job; exit 0 when every job
was confirmed, 1 otherwise. Needs pika (requirements.txt).
"""

import argparse
import json
import os
import sys
import time

import pika
from pika.exceptions import NackError, UnroutableError

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/%2f"


def read_jobs(path):
    """The jobs of a file: one object, an array, or one object per line."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    try:
        value = json.loads(text)
        return value if isinstance(value, list) else [value]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def publish(channel, exchange, job, routing_key=None):
    """Publishes one job and waits for the broker's confirm. Returns None when confirmed,
    else why not (returned as unroutable, or refused)."""
    body = json.dumps(job, ensure_ascii=False).encode("utf-8")
    properties = pika.BasicProperties(
        content_type="application/json",
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=job["job_id"],
        timestamp=int(time.time()),
    )
    try:
        # With confirms on, this blocks until the broker acks; a return (mandatory, and no
        # queue bound for the key) raises UnroutableError, a nack raises NackError.
        channel.basic_publish(
            exchange=exchange,
            routing_key=routing_key or f"create_user.{job['vendor']}",
            body=body,
            properties=properties,
            mandatory=True,
        )
        return None
    except UnroutableError as e:
        returned = e.messages[0].method if e.messages else None
        return f"unroutable ({returned.reply_text if returned else 'returned'})"
    except NackError:
        return "refused by the broker (nack)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="the job(s), JSON")
    parser.add_argument("--amqp", default=os.environ.get("AMQP_URL", DEFAULT_AMQP), help="broker URL (env AMQP_URL)")
    parser.add_argument("--exchange", default="provisioning.jobs", help="the jobs exchange")
    parser.add_argument("--routing-key", help="instead of create_user.<vendor> (for trying a wrong one)")
    args = parser.parse_args()

    jobs = read_jobs(args.file)
    connection = pika.BlockingConnection(pika.URLParameters(args.amqp))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        failed = 0
        for job in jobs:
            why = publish(channel, args.exchange, job, args.routing_key)
            if why is None:
                print(f"confirmed {job['job_id']}", flush=True)
            else:
                failed += 1
                print(f"returned {job['job_id']}: {why}", flush=True)
    finally:
        connection.close()
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
