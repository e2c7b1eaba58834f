// Posts a hire event to the provisioner's HTTP intake, signed with X-Signature.
//
//   HMAC_SECRET=... node post_hire.js https://provisioner.example/v1/hires hire.json
//
// The signature is t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>"> over the bytes sent
// (docs/hire-events.md). The intake accepts it within 5 minutes of its clock, and only once,
// so every attempt is signed anew; a 503 or a lost answer is retried, which is safe: the same
// hire gives the same job ids, and a job that got through the first time ends `existing`.
//
// Prints `<status> <answer>`; exit 0 on 202, 1 otherwise. Node 18 or later, no packages.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");

/** The X-Signature value for body (a Buffer), signed now or at timestamp (unix seconds). */
function signature(secret, body, timestamp) {
  const t = String(timestamp ?? Math.floor(Date.now() / 1000));
  const mac = crypto.createHmac("sha256", secret).update(`${t}.`).update(body).digest("hex");
  return `t=${t},v1=${mac}`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** POSTs the hire, signed anew for every attempt. Resolves to [status, answer text]. */
async function postHire(url, secret, body, attempts = 5) {
  for (let attempt = 1; ; attempt++) {
    let delay = 5;
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Signature": signature(secret, body) },
        body,
        signal: AbortSignal.timeout(30_000),
      });
      const answer = await response.text();
      if (response.status !== 503 || attempt === attempts) return [response.status, answer];
      delay = Number(response.headers.get("retry-after")) || 5;
    } catch (err) {
      if (attempt === attempts) throw err;
    }
    // At least a second, so that the next attempt is signed with a new timestamp.
    await sleep(Math.max(1, delay) * 1000);
  }
}

module.exports = { signature, postHire };

if (require.main === module) {
  const [url, path] = process.argv.slice(2);
  if (!url || !path || !process.env.HMAC_SECRET) {
    console.error("usage: HMAC_SECRET=... node post_hire.js URL hire.json");
    process.exit(2);
  }
  postHire(url, Buffer.from(process.env.HMAC_SECRET, "utf8"), fs.readFileSync(path)).then(
    ([status, answer]) => {
      console.log(`${status} ${answer}`);
      process.exit(status === 202 ? 0 : 1);
    },
    (err) => {
      console.error(`post_hire: ${err.message}`);
      process.exit(1);
    },
  );
}
