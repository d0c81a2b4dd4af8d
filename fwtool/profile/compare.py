"""``fwtool profile --compare``: two profiles side by side (e.g. a model before and after re-quantization).

Models with the same operator sequence are compared layer by layer; otherwise per op type (count, time, MACs).
Ratios are other/first: below 1 means the other model is faster there.
"""
from __future__ import annotations


def _ratio(a: float | None, b: float | None) -> float | None:
    return b / a if a and b is not None else None


def side_by_side(first: dict, other: dict) -> dict:
    ops_a = [r["op"] for r in first["layers"]]
    ops_b = [r["op"] for r in other["layers"]]
    by = "layer" if ops_a == ops_b else "op"
    rows = []
    if by == "layer":
        for a, b in zip(first["layers"], other["layers"]):
            rows.append({"key": f"{a['index']} {a['op']}", "op": a["op"], "us": [a["us"], b["us"]],
                         "macs": [a["macs"], b["macs"]], "kernel": [a["kernel"], b["kernel"]],
                         "ratio": _ratio(a["us"], b["us"])})
    else:
        ta = {t["op"]: t for t in first["ops"]}
        tb = {t["op"]: t for t in other["ops"]}
        for op in [*ta, *(o for o in tb if o not in ta)]:
            a, b = ta.get(op), tb.get(op)
            rows.append({"key": f"{op} x{a['count'] if a else 0}/{b['count'] if b else 0}", "op": op,
                         "us": [a["us"] if a else None, b["us"] if b else None],
                         "macs": [a["macs"] if a else None, b["macs"] if b else None],
                         "kernel": [a["kernel"] if a else None, b["kernel"] if b else None],
                         "ratio": _ratio(a["us"] if a else None, b["us"] if b else None)})
    totals = {
        "invoke_us": [first["invoke_us"], other["invoke_us"]],
        "invoke_ratio": _ratio(first["invoke_us"], other["invoke_us"]),
        "arena_used": [first["arena"]["used"], other["arena"]["used"]],
        "macs": [first["macs"], other["macs"]],
    }
    return {"models": [first["model"]["name"], other["model"]["name"]], "by": by, "rows": rows, "totals": totals}
