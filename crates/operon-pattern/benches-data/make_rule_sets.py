#!/usr/bin/env python3
"""Writes one rules file per citylots benchmark rule set (rules r0..r4, as
event-ruler names them) from citylots-synth.expected.json, for
`operon events match --rules`. Usage: make_rule_sets.py EXPECTED.json OUT_DIR"""
import json
import os
import sys

expected = json.load(open(sys.argv[1]))
out_dir = sys.argv[2]
os.makedirs(out_dir, exist_ok=True)
for rule_set in expected["rule_sets"]:
    rules = {f"r{i}": rule["pattern"] for i, rule in enumerate(rule_set["rules"])}
    with open(os.path.join(out_dir, rule_set["name"] + ".json"), "w") as f:
        json.dump(rules, f, indent=1)
    with open(os.path.join(out_dir, rule_set["name"] + ".expected.json"), "w") as f:
        json.dump({f"r{i}": rule["expected_matches"] for i, rule in enumerate(rule_set["rules"])}, f)
