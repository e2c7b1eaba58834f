"""Posts a hire event to the provisioner's HTTP intake, signed with X-Signature.

    HMAC_SECRET=... python3 sign_hire.py https://provisioner.example/v1/hires hire.json

The signature is t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">. The intake accepts
it within 5 minutes of its clock, and only once, so every attempt is signed anew.
Standard library only (docs/hire-events.md).
"""

import hashlib
import hmac
import os
import sys
import time
import urllib.error
import urllib.request


def signature(secret, body, timestamp=None):
    """The X-Signature value for body (bytes), signed now or at timestamp (unix seconds)."""
    t = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def post_hire(url, secret, body, attempts=5):
    """POSTs the hire, signed anew for every attempt, and retries a 503 or a lost answer
    (sending the same hire again is safe). Returns (status, answer text)."""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "X-Signature": signature(secret, body)},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, answer = error.code, error.read().decode()
            if status != 503 or attempt == attempts:
                return status, answer
            delay = int(error.headers.get("Retry-After") or 5)
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            if attempt == attempts:
                raise
            delay = 5
        # At least a second, so that the next attempt is signed with a new timestamp.
        time.sleep(max(1, delay))


if __name__ == "__main__":
    url, path = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        body = f.read()
    status, answer = post_hire(url, os.environ["HMAC_SECRET"].encode(), body)
    print(status, answer)
    sys.exit(0 if status == 202 else 1)
