"""Parses an OpenMetrics exposition from stdin with prometheus_client's own parser (an
implementation this project did not write) and prints every sample as JSON lines:
{"family": ..., "type": ..., "name": ..., "labels": {...}, "value": ...}.

Exits 1 with the parser's message when the text is not valid OpenMetrics."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError and others
        print(f"invalid OpenMetrics: {e}", file=sys.stderr)
        sys.exit(1)
    for family in families:
        for sample in family.samples:
            print(json.dumps({
                "family": family.name,
                "type": family.type,
                "name": sample.name,
                "labels": sample.labels,
                "value": sample.value,
            }))


main()
