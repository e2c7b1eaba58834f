// Reads the provisioner's result events and prints each as one JSON line.
//
//   node watch_events.js [--amqp URL] [--exchange provisioning.events] [--binding 'user.#']
//                        [--queue NAME] [--count N] [--timeout SECONDS]
//
// Result events are CloudEvents documents on the topic exchange `provisioning.events`, routing
// key `user.<outcome>.<vendor>` (so `user.failed.*` selects failures). Without --queue this
// reads a temporary queue of its own, which exists only while it runs; an integration that
// must not miss events while it is down declares a durable queue instead (--queue NAME, a
// quorum queue it keeps). Each event is acked after it was printed (at least once: an event
// may come twice, e.g. after a reconnect; `id` tells them apart, `subject` is the job).
//
// Says on stderr when its queue is bound; stops after --count events, or exits 1 when
// --timeout passes first. Needs amqplib (package.json).
"use strict";

const { parseArgs } = require("node:util");
const amqp = require("amqplib");

const DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/%2f";

/** The same members in sorted order, so that lines compare and diff well. */
function sorted(value) {
  if (Array.isArray(value)) return value.map(sorted);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sorted(value[k])]));
  }
  return value;
}

async function main() {
  const { values } = parseArgs({
    options: {
      amqp: { type: "string", default: process.env.AMQP_URL || DEFAULT_AMQP },
      exchange: { type: "string", default: "provisioning.events" },
      binding: { type: "string", default: "user.#" }, // every result event; "#" adds the job.* step events
      queue: { type: "string" },
      count: { type: "string" },
      timeout: { type: "string" },
    },
  });
  const count = values.count === undefined ? Infinity : Number(values.count);
  const connection = await amqp.connect(values.amqp);
  const channel = await connection.createChannel();
  let queue;
  if (values.queue) {
    await channel.assertQueue(values.queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
    queue = values.queue;
  } else {
    queue = (await channel.assertQueue("", { exclusive: true, autoDelete: true })).queue;
  }
  await channel.bindQueue(queue, values.exchange, values.binding);
  await channel.prefetch(50);

  let seen = 0;
  const done = new Promise((resolve) => {
    if (values.timeout !== undefined) {
      setTimeout(() => {
        console.error(`timed out after ${values.timeout}s with ${seen} event(s)`);
        resolve(1);
      }, Number(values.timeout) * 1000);
    }
    process.once("SIGINT", () => resolve(0));
    channel.consume(queue, (msg) => {
      if (msg === null) return resolve(1); // the broker cancelled the consumer
      if (seen >= count) return; // more were prefetched than asked for: not acked, they go back
      const event = JSON.parse(msg.content.toString("utf8"));
      console.log(JSON.stringify(sorted(event)));
      channel.ack(msg);
      seen += 1;
      if (seen >= count) resolve(0);
    });
  });
  console.error(`watching ${values.exchange} (${values.binding}) on queue ${queue}`);
  const code = await done;
  await connection.close();
  return code;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`watch_events: ${err.message}`);
    process.exit(2);
  },
);
