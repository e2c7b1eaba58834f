"""Reads the provisioner's result events and prints each as one JSON line.

    python3 watch_events.py [--amqp URL] [--exchange provisioning.events] [--binding 'user.#']
                            [--queue NAME] [--count N] [--timeout SECONDS]

Result events are CloudEvents documents on the topic exchange `provisioning.events`, routing
key `user.<outcome>.<vendor>` (so `user.failed.*` selects failures). Without --queue this
reads a temporary queue of its own, which exists only while it runs; an integration that
must not miss events while it is down declares a durable queue instead (--queue NAME, a
quorum queue it keeps). Each event is acked after it was printed (at least once: an event
may come twice, e.g. after a reconnect; `id` tells them apart, `subject` is the job).

Says on stderr when its queue is bound; stops after --count events, or exits 1 when
--timeout passes first. Needs pika (requirements.txt).
"""

import argparse
import json
import os
import sys
import time

import pika

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/%2f"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amqp", default=os.environ.get("AMQP_URL", DEFAULT_AMQP), help="broker URL (env AMQP_URL)")
    parser.add_argument("--exchange", default="provisioning.events", help="the events exchange")
    parser.add_argument("--binding", default="user.#", help="binding key, e.g. user.failed.* (default: every result event; # adds the job.* step events)")
    parser.add_argument("--queue", help="a durable quorum queue of your own (default: a temporary one)")
    parser.add_argument("--count", type=int, help="stop after this many events")
    parser.add_argument("--timeout", type=float, help="give up (exit 1) after this many seconds")
    args = parser.parse_args()

    connection = pika.BlockingConnection(pika.URLParameters(args.amqp))
    channel = connection.channel()
    if args.queue:
        channel.queue_declare(args.queue, durable=True, arguments={"x-queue-type": "quorum"})
        queue = args.queue
    else:
        queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    channel.queue_bind(queue, args.exchange, routing_key=args.binding)
    channel.basic_qos(prefetch_count=50)
    print(f"watching {args.exchange} ({args.binding}) on queue {queue}", file=sys.stderr, flush=True)

    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    seen = 0
    try:
        while args.count is None or seen < args.count:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                print(f"timed out after {args.timeout}s with {seen} event(s)", file=sys.stderr, flush=True)
                return 1
            # consume() yields (None, None, None) after a second without a message, so the
            # deadline is checked at least once a second.
            for method, _properties, body in channel.consume(queue, inactivity_timeout=1.0):
                if method is None:
                    break
                event = json.loads(body)
                print(json.dumps(event, ensure_ascii=False, sort_keys=True), flush=True)
                channel.basic_ack(method.delivery_tag)
                seen += 1
                if args.count is not None and seen >= args.count:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        try:
            channel.cancel()
            connection.close()
        except pika.exceptions.AMQPError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
