#!/usr/bin/env python3
"""Keeps the deployment docs honest. The docs live in docs/deploy-readme.md until they are
merged into README.md; whichever has the "Deploy on Kubernetes" section is read.

    readme.py example OUT     writes the README's minimal values.yaml example to OUT
    readme.py anchors RULES   fails unless every runbook_url anchor of RULES is a heading
"""

import os
import re
import sys

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def doc():
    for name in ("README.md", "docs/deploy-readme.md"):
        path = os.path.join(ROOT, name)
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
            if "## Deploy on Kubernetes" in text:
                return name, text
    sys.exit("ERROR no README.md or docs/deploy-readme.md has a 'Deploy on Kubernetes' section")


def anchor(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def main():
    name, text = doc()
    if sys.argv[1] == "example":
        m = re.search(r"### A minimal values\.yaml\n.*?```yaml\n(.*?)```", text, re.S)
        if not m:
            sys.exit(f"ERROR {name}: no yaml block under '### A minimal values.yaml'")
        with open(sys.argv[2], "w") as f:
            f.write(m.group(1))
        print(f"INFO the minimal values.yaml of {name}")
    elif sys.argv[1] == "anchors":
        headings = {anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
        with open(sys.argv[2]) as f:
            rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"] if "alert" in r]
        missing = []
        for r in rules:
            url = r.get("annotations", {}).get("runbook_url", "")
            if "#" not in url or url.split("#", 1)[1] not in headings:
                missing.append(f"{r['alert']}: {url!r}")
        if missing:
            sys.exit(f"ERROR runbook links without a heading in {name}: {missing}")
        print(f"INFO every alert links to a runbook section of {name}")


if __name__ == "__main__":
    main()
