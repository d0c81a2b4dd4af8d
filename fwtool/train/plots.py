"""PNG pictures of the report (matplotlib, an optional extra: ``pip install 'fwtool[plots]'``): the confusion matrix,
ROC curves per class, the training curves and, for kws, FRR against false accepts per hour over the grid."""
from __future__ import annotations

import io

import numpy as np

FIX = "pip install 'fwtool[plots]'  (matplotlib) for the PNG plots"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def render(report: dict, rocs: dict[str, tuple[list[float], list[float]]]) -> dict[str, bytes]:
    """{file name: PNG bytes}; empty when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    out = {}

    def save(fig, name):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        out[name] = buf.getvalue()

    test = report["test"]
    labels, m = test["confusion"]["labels"], np.array(test["confusion"]["matrix"])
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(labels), 1 + 0.6 * len(labels)))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xlabel("predicted (int8)")
    ax.set_ylabel("true")
    ax.set_title(f"test: int8 accuracy {test['int8_accuracy']}%")
    save(fig, "confusion.png")

    fig, ax = plt.subplots(figsize=(5, 4.5))
    for lab, (fpr, tpr) in rocs.items():
        a = test["per_class"][lab]["roc_auc"]
        ax.plot(fpr, tpr, label=f"{lab} (AUC {a})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=8)
    ax.set_title("ROC per class (int8, test)")
    save(fig, "roc.png")

    h = report["training"]["history"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for k in ("accuracy", "val_accuracy"):
        if k in h:
            ax.plot(range(1, len(h[k]) + 1), h[k], label=k)
    ax.set_xlabel("epoch")
    ax.legend()
    save(fig, "training.png")

    st = report.get("streaming")
    if st:
        fig, ax = plt.subplots(figsize=(5, 4))
        for s in sorted({g["smoothing"] for g in st["grid"]}):
            pts = [g for g in st["grid"] if g["smoothing"] == s and g["frr"] is not None]
            ax.plot([g["fa_per_hour"] for g in pts], [100 * g["frr"] for g in pts], "o-", label=f"smoothing {s}")
        c = st["chosen"]
        ax.plot([c["fa_per_hour"]], [100 * c["frr"]], "r*", ms=14, label=f"chosen {c['threshold']}/{c['smoothing']}")
        ax.set_xlabel("false accepts per hour")
        ax.set_ylabel("false rejects %")
        ax.legend(fontsize=8)
        ax.set_title(f"streaming ({st['seconds'] / 60:.1f} min, host twin)")
        save(fig, "streaming.png")
    return out
