"""Benchmark runner; the measurements arrive with the load-and-faults issue."""

import json

print("no benchmarks yet")
print(json.dumps({}))
