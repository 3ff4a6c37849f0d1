#!/usr/bin/env python3
"""Writes EXACT_10.json and EXACT_10000.json: N exact-match rules over the
citylots fields (MAPBLKLOT values, streets, block numbers; some match, most
do not), to compare throughput of a small and a large rule set.
Usage: make_exact_scaling.py OUT_DIR"""
import json
import os
import random
import sys

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
for n in (10, 10000):
    rng = random.Random(7)
    rules = {}
    for i in range(n):
        kind = i % 4
        if kind == 0:
            rules[f"r{i}"] = {"properties": {"MAPBLKLOT": [f"{rng.randint(1, 7600):04d}{rng.randint(1, 120):03d}"]}}
        elif kind == 1:
            rules[f"r{i}"] = {"properties": {"BLOCK_NUM": [f"{rng.randint(1, 7600):04d}"], "ODD_EVEN": ["E"]}}
        elif kind == 2:
            rules[f"r{i}"] = {"properties": {"STREET": [f"STREET{i}"]}}
        else:
            rules[f"r{i}"] = {"geometry": {"type": ["Polygon"]}, "properties": {"FROM_ST": [str(rng.randint(0, 3000))], "STREET": ["MISSION", "FULTON"]}}
    with open(os.path.join(out_dir, f"EXACT_{n}.json"), "w") as f:
        json.dump(rules, f)
