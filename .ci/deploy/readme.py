#!/usr/bin/env python3
"""Keeps the deployment docs honest: docs/deployment.md holds the minimal values.yaml that CI
renders the chart with, and docs/runbook.md has a section for every alert.

    readme.py example OUT     writes docs/deployment.md's minimal values.yaml example to OUT
                              (the yaml block under the heading "A minimal values.yaml")
    readme.py anchors RULES   fails unless every runbook_url anchor of RULES (a rendered
                              PrometheusRule's spec) is a heading of docs/runbook.md
"""

import os
import re
import sys

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DEPLOYMENT = "docs/deployment.md"
RUNBOOK = "docs/runbook.md"


def doc(name):
    path = os.path.join(ROOT, name)
    if not os.path.exists(path):
        sys.exit(f"ERROR {name} does not exist")
    with open(path) as f:
        return f.read()


def anchor(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def main():
    if sys.argv[1] == "example":
        text = doc(DEPLOYMENT)
        m = re.search(r"^#+ A minimal values\.yaml\n.*?^```yaml\n(.*?)^```", text, re.S | re.M)
        if not m:
            sys.exit(f"ERROR {DEPLOYMENT}: no yaml block under the heading 'A minimal values.yaml'")
        with open(sys.argv[2], "w") as f:
            f.write(m.group(1))
        print(f"INFO the minimal values.yaml of {DEPLOYMENT}")
    elif sys.argv[1] == "anchors":
        text = doc(RUNBOOK)
        headings = {anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
        with open(sys.argv[2]) as f:
            rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"] if "alert" in r]
        missing = []
        for r in rules:
            url = r.get("annotations", {}).get("runbook_url", "")
            if "#" not in url or url.split("#", 1)[1] not in headings:
                missing.append(f"{r['alert']}: {url!r}")
        if missing:
            sys.exit(f"ERROR runbook links without a heading in {RUNBOOK}: {missing}")
        print(f"INFO every alert links to a runbook section of {RUNBOOK}")


if __name__ == "__main__":
    main()
