#!/usr/bin/env python3
"""Checks each job file against the committed job schema with an off-the-shelf JSON Schema
2020-12 validator (Python jsonschema), printing one JSON line per file:
{"file": ..., "valid": ..., "errors": [...]}.

Usage: schema_verdicts.py SCHEMA JOB.json...   (tests/schemas.rs compares the verdicts with
`provisioner validate`; ./scripts/test installs the pinned jsonschema.)
"""
import json
import sys

from jsonschema import Draft202012Validator


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            job = json.load(f)
        errors = [
            {"path": "/".join(str(p) for p in e.absolute_path), "message": e.message[:300]}
            for e in validator.iter_errors(job)
        ]
        print(json.dumps({"file": path, "valid": not errors, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
