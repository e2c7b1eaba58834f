#!/usr/bin/env python3
"""Fails unless every alert of RULES fires in at least one case of the promtool TESTS.

    alerts_covered.py RULES TESTS
"""

import sys

import yaml

rules_file, tests_file = sys.argv[1], sys.argv[2]
with open(rules_file) as f:
    alerts = {r["alert"] for g in yaml.safe_load(f)["groups"] for r in g["rules"] if "alert" in r}
with open(tests_file) as f:
    tests = yaml.safe_load(f)["tests"]
fired = {c["alertname"] for t in tests for c in t.get("alert_rule_test", []) if c.get("exp_alerts")}
missing = sorted(alerts - fired)
unknown = sorted(fired - alerts)
if not alerts:
    sys.exit(f"ERROR {rules_file} has no alert")
if missing or unknown:
    sys.exit(f"ERROR alerts never fired by a test: {missing}; tested alerts that do not exist: {unknown}")
print(f"INFO each of the {len(alerts)} alerts fires in a test: {', '.join(sorted(alerts))}")
