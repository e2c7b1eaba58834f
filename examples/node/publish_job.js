// Publishes create-user jobs to the provisioner, each confirmed by the broker.
//
//   node publish_job.js job.json [--amqp URL] [--exchange provisioning.jobs]
//
// The file holds one job (a JSON object), a JSON array of jobs, or one job per line. Each job
// goes to the topic exchange `provisioning.jobs` with routing key `create_user.<vendor>`,
// persistent, `messageId` = its `job_id`, and `mandatory`, on a confirm channel: a job counts
// as sent only once the broker confirmed it, and a job no queue took (the service never
// started, or a wrong vendor) comes back as returned instead of vanishing. Publishing a job
// again is safe: its `job_id` is the idempotency key, so it ends `existing`.
//
// Prints `confirmed <job_id>` or `returned <job_id>: <reason>` per job; exit 0 when every job
// was confirmed, 1 otherwise. Needs amqplib (package.json).
"use strict";

const fs = require("node:fs");
const { parseArgs } = require("node:util");
const amqp = require("amqplib");

const DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/%2f";

/** The jobs of a file: one object, an array, or one object per line. */
function readJobs(path) {
  const text = fs.readFileSync(path, "utf8");
  try {
    const value = JSON.parse(text);
    return Array.isArray(value) ? value : [value];
  } catch {
    return text.split("\n").filter((line) => line.trim()).map((line) => JSON.parse(line));
  }
}

/**
 * Publishes one job and waits for the broker's confirm. Resolves to null when confirmed, else
 * to why not (returned as unroutable, or refused).
 */
function publish(channel, exchange, job, routingKey) {
  const body = Buffer.from(JSON.stringify(job), "utf8");
  return new Promise((resolve) => {
    let returned = null;
    // RabbitMQ sends a mandatory message's basic.return before its confirm, so the return
    // (if any) is known when the callback runs. Jobs go one at a time here; a producer that
    // pipelines publishes matches returns to jobs by messageId.
    const onReturn = (msg) => {
      if (msg.properties.messageId === job.job_id) {
        returned = `unroutable (${msg.fields.replyText})`;
      }
    };
    channel.on("return", onReturn);
    channel.publish(
      exchange,
      routingKey || `create_user.${job.vendor}`,
      body,
      {
        contentType: "application/json",
        persistent: true,
        messageId: job.job_id,
        timestamp: Math.floor(Date.now() / 1000),
        mandatory: true,
      },
      (err) => {
        channel.removeListener("return", onReturn);
        resolve(err ? "refused by the broker (nack)" : returned);
      },
    );
  });
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      amqp: { type: "string", default: process.env.AMQP_URL || DEFAULT_AMQP },
      exchange: { type: "string", default: "provisioning.jobs" },
      "routing-key": { type: "string" },
    },
  });
  if (positionals.length !== 1) {
    console.error("usage: node publish_job.js job.json [--amqp URL] [--exchange NAME] [--routing-key KEY]");
    return 2;
  }
  const jobs = readJobs(positionals[0]);
  const connection = await amqp.connect(values.amqp);
  let failed = 0;
  try {
    const channel = await connection.createConfirmChannel();
    for (const job of jobs) {
      const why = await publish(channel, values.exchange, job, values["routing-key"]);
      if (why === null) {
        console.log(`confirmed ${job.job_id}`);
      } else {
        failed += 1;
        console.log(`returned ${job.job_id}: ${why}`);
      }
    }
    await channel.close();
  } finally {
    await connection.close();
  }
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`publish_job: ${err.message}`);
    process.exit(2);
  },
);
