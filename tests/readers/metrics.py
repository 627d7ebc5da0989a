"""Parses an OpenMetrics exposition (file argument) with prometheus_client's own strict
parser and prints its families as JSON: {name: {"type", "help", "unit", "samples": [[name, labels, value]]}}."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
out = {}
for f in text_string_to_metric_families(text):
    out[f.name] = {
        "type": f.type,
        "help": f.documentation,
        "unit": f.unit,
        "samples": [[s.name, s.labels, s.value] for s in f.samples],
    }
print(json.dumps(out))
