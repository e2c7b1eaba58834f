#!/usr/bin/env python3
"""Prints the README's two commands, one a line, exactly as the README writes them.

They are the first two ```sh blocks under the heading "## The two commands": the demo, then
the test suite. CI runs each line as written, so a README that drifts from what works fails.
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read()
m = re.search(r"^## The two commands\n(.*?)(?=^## )", text, re.M | re.S)
if not m:
    sys.exit("ERROR README.md has no '## The two commands' section")
blocks = re.findall(r"^```sh\n(.*?)^```", m.group(1), re.M | re.S)
if len(blocks) < 2:
    sys.exit(f"ERROR '## The two commands' has {len(blocks)} ```sh blocks; expected the demo and the tests")
for block in blocks[:2]:
    lines = [l for l in block.splitlines() if l.strip()]
    if len(lines) != 1:
        sys.exit(f"ERROR each of the two commands must be one line, got {lines!r}")
    print(lines[0])
