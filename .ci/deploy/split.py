#!/usr/bin/env python3
"""Splits a `helm template` rendering for the CI checks, and checks what kubernetes-validate
cannot.

    split.py RENDERED OUTDIR

Writes into OUTDIR:
  core.yaml            every resource of a core Kubernetes kind, for `kubernetes-validate --strict`
  rules.yaml           the PrometheusRule's spec (a plain Prometheus rules file), when rendered
  dashboard-rules.yaml the dashboard's queries as recording rules, so `promtool check rules`
                       parses every one of them, when the dashboard is rendered
  config/              the files of the service's ConfigMap (default.toml, <env>.toml)
  env                  the PROVISIONER_ENV the Deployment sets

Custom resources (ServiceMonitor, PrometheusRule, ScaledObject, TriggerAuthentication) have
no schema in kubernetes-validate. They are validated here against the JSON schemas in
crd-schemas.json beside this file (hand-written from the CRDs, strict: unknown fields fail).
Any other kind that is not in that file goes to core.yaml, where kubernetes-validate must
know it.

Exits 1 naming every problem.
"""

import json
import os
import re
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def fail(problems):
    for p in problems:
        print(f"ERROR {p}", file=sys.stderr)
    sys.exit(1)


def dashboard_problems(dash):
    """Every panel but rows has queries, every query has an expression, ids are unique."""
    problems, ids = [], set()
    panels = dash.get("panels", [])
    if not panels:
        problems.append("dashboard: no panels")
    for panel in panels:
        pid, title = panel.get("id"), panel.get("title", "?")
        if pid in ids:
            problems.append(f"dashboard: panel id {pid} is used twice")
        ids.add(pid)
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"dashboard: panel {title!r} has no query")
        for t in targets:
            if not (t.get("expr") or "").strip():
                problems.append(f"dashboard: panel {title!r} query {t.get('refId')} has no expression")
        if "gridPos" not in panel:
            problems.append(f"dashboard: panel {title!r} has no gridPos")
    return problems


def dashboard_rules(dash):
    """The dashboard's queries as recording rules, Grafana variables replaced by values."""
    subst = {
        "${job_queue_prefix:regex}": "provisioning\\\\.jobs",
        "$__rate_interval": "5m",
        "$__interval": "1m",
        "$__range": "1h",
        "$namespace": ".*",
        "$dead_queue": "provisioning.dead",
        "$ledger_queue": "provisioning.ledger",
    }
    rules = []
    for panel in dash.get("panels", []):
        for t in panel.get("targets") or []:
            expr = t.get("expr") or ""
            for k, v in subst.items():
                expr = expr.replace(k, v)
            leftover = re.findall(r"\$\{?\w+", expr)
            if leftover:
                fail([f"dashboard: panel {panel.get('title')!r} uses unknown variables {leftover}"])
            rules.append({"record": f"dashboard:panel{panel['id']}:{t['refId']}", "expr": expr})
    return {"groups": [{"name": "dashboard-queries", "rules": rules}]}


def main():
    rendered, out = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.join(out, "config"), exist_ok=True)
    with open(os.path.join(HERE, "crd-schemas.json")) as f:
        crd_schemas = json.load(f)
    with open(rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]

    problems, core, kinds = [], [], []
    for doc in docs:
        key = f"{doc.get('apiVersion')}/{doc.get('kind')}"
        name = doc.get("metadata", {}).get("name")
        kinds.append(doc.get("kind"))
        if key in crd_schemas:
            errors = sorted(jsonschema.Draft7Validator(crd_schemas[key]).iter_errors(doc), key=str)
            for e in errors:
                path = ".".join(str(p) for p in e.absolute_path)
                problems.append(f"{key} {name}: {path}: {e.message}")
            if not errors:
                print(f"INFO {key} {name} passed the CRD schema")
        else:
            core.append(doc)

        if doc.get("kind") == "PrometheusRule":
            with open(os.path.join(out, "rules.yaml"), "w") as f:
                yaml.safe_dump(doc["spec"], f, sort_keys=False)
        if doc.get("kind") == "ConfigMap" and name.endswith("-config"):
            for fname, content in doc["data"].items():
                with open(os.path.join(out, "config", fname), "w") as f:
                    f.write(content)
        if doc.get("kind") == "ConfigMap" and name.endswith("-dashboard"):
            for fname, content in doc["data"].items():
                try:
                    dash = json.loads(content)
                except json.JSONDecodeError as e:
                    fail([f"dashboard {fname} is not JSON: {e}"])
                problems += dashboard_problems(dash)
                with open(os.path.join(out, "dashboard-rules.yaml"), "w") as f:
                    yaml.safe_dump(dashboard_rules(dash), f, sort_keys=False)
        if doc.get("kind") == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            with open(os.path.join(out, "env"), "w") as f:
                f.write(env.get("PROVISIONER_ENV", ""))

    with open(os.path.join(out, "core.yaml"), "w") as f:
        yaml.safe_dump_all(core, f, sort_keys=False)
    if problems:
        fail(problems)
    print(f"INFO split {len(docs)} resources: {', '.join(sorted(kinds))}")


if __name__ == "__main__":
    main()
