"""``fwtool validate``: input vectors, host reference, target runs, comparison (flow.py ties them together)."""
