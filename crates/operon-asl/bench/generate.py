#!/usr/bin/env python3
"""Writes the benchmark definitions and inputs used in BENCHMARKS.md.

usage: python3 generate.py OUT_DIR
"""
import json, os, sys

out = sys.argv[1] if len(sys.argv) > 1 else "."
os.makedirs(out, exist_ok=True)

def write(name, value):
    with open(os.path.join(out, name), "w") as f:
        json.dump(value, f)

# 1,000-state Pass chain.
states = {f"S{i}": {"Type": "Pass", "Next": f"S{i+1}"} for i in range(999)}
states["S999"] = {"Type": "Pass", "End": True}
write("pass_chain.json", {"StartAt": "S0", "States": states})
write("pass_chain_input.json", {"a": 1})

# Choice loop counting to 100,000 with States.MathAdd.
write("choice_loop.json", {
    "StartAt": "Init",
    "States": {
        "Init": {"Type": "Pass", "Result": {"count": 0}, "Next": "Inc"},
        "Inc": {"Type": "Pass", "Parameters": {"count.$": "States.MathAdd($.count, 1)"}, "Next": "Check"},
        "Check": {"Type": "Choice", "Choices": [{"Variable": "$.count", "NumericLessThan": 100000, "Next": "Inc"}], "Default": "Done"},
        "Done": {"Type": "Succeed"},
    },
})
write("choice_loop_input.json", {})

# Map over 100,000 items.
write("map_100k.json", {
    "StartAt": "M",
    "States": {"M": {"Type": "Map", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, "End": True}},
})
write("map_100k_input.json", list(range(100000)))
