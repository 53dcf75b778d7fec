"""Writes an evaluation's outputs: metrics.json, report.md, ROC plots and the face grid."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np

CONDITION_TITLES = {"original": "original", "same": "SM", "neutral": "NT", "opposite": "OP",
                    "blur": "blur", "pixelate": "pixelate"}
FMR_COLUMN = "0.01"


def slug(name: str) -> str:
    """A file-name-safe form of an evaluator's name."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "evaluator"


def _json_safe(value):
    """NaN and inf are not JSON: they become null (NaN) and the strings "inf" / "-inf"."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_text(path: Path, text: str | bytes) -> None:
    """Writes a file under a temporary name and renames it: readers never see half a file."""
    mode = "wb" if isinstance(text, bytes) else "w"
    with tempfile.NamedTemporaryFile(mode, dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as handle:
        handle.write(text)
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)


def write_json(path: Path, metrics: dict) -> None:
    write_text(path, json.dumps(_json_safe(metrics), indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------
# Markdown.
# ---------------------------------------------------------------------------------------------


def _cell(value, percent=True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _condition_header(conditions, baselines) -> list[str]:
    header = []
    for condition in conditions:
        title = CONDITION_TITLES.get(condition, condition)
        if condition in baselines:
            title += f" ({baselines[condition]['parameter']}={baselines[condition]['strength']:g})"
        header.append(title)
    return header


def gender_table(metrics: dict, key: str = "error_rate") -> str:
    """Paper table 1: gender `key` per classifier, before and after SM / NT / OP (+ baselines)."""
    conditions = metrics["conditions"]
    baselines = metrics.get("baselines", {}).get("chosen", {})
    rows = [[f"{name} ({entry['origin']})"]
            + [_cell(entry["conditions"].get(c, {}).get(key), percent=key == "error_rate")
               for c in conditions]
            for name, entry in metrics["gender"].items()]
    return _table(["gender classifier"] + _condition_header(conditions, baselines), rows)


def matching_table(metrics: dict, fmr: str = FMR_COLUMN) -> str:
    """Paper table 2: TMR at FMR=`fmr` per matcher and condition (+ baselines)."""
    matching = metrics["matching"]
    conditions = matching["conditions"]
    baselines = metrics.get("baselines", {}).get("chosen", {})
    rows = [[f"{name} ({entry['origin']})"]
            + [_cell(entry["conditions"].get(c, {}).get("tmr_at_fmr", {}).get(fmr))
               for c in conditions]
            for name, entry in matching["matchers"].items()]
    return _table(["matcher"] + _condition_header(conditions, baselines), rows)


def quality_table(metrics: dict) -> str:
    rows = [[CONDITION_TITLES.get(c, c), _cell(q["ssim"], percent=False),
             _cell(q["psnr"], percent=False)] for c, q in metrics["quality"].items()]
    return _table(["output vs original", "SSIM", "PSNR (dB)"], rows)


def markdown(metrics: dict) -> str:
    """The whole report.md."""
    matching = metrics["matching"]
    parts = [
        "# SAN evaluation\n",
        f"Export `{metrics['export']}`, gender test set `{metrics['dataset']}` "
        f"(split `test`, {metrics['examples']} faces, {metrics['gender_examples']} of known "
        "gender). SM / NT / OP: the SAN's output with the same, neutral and opposite "
        "prototype. Independent networks were trained on the `validation` split, the SAN on "
        "`train`.\n",
        "## Gender classification error\n",
        "Error rate of each classifier (threshold 0.5). On OP a rate near 100% means the "
        "classifier reads the opposite gender; near 50% means it can no longer tell.\n",
        gender_table(metrics),
        "\nROC-AUC of male detection:\n",
        gender_table(metrics, key="auc"),
        "## Face matching\n",
        f"{matching['protocol_note']} Similarity: {matching['similarity']}. "
        f"{matching['genuine_pairs']} genuine and {matching['impostor_pairs']} impostor pairs "
        f"over {matching['probes']} probes from `{matching['dataset']}`.\n",
        "True-match rate at a false-match rate of 1%:\n",
        matching_table(metrics),
        "\nTrue-match rate at a false-match rate of 0.1%"
        + (" (too few impostor pairs: these are at FMR = 0)"
           if matching["impostor_pairs"] < 1000 else "") + ":\n",
        matching_table(metrics, "0.001"),
        "## Image quality\n",
        quality_table(metrics),
    ]
    baselines = metrics.get("baselines", {})
    if baselines.get("chosen"):
        parts += ["## Naive baselines\n",
                  f"Blur (Gaussian sigma, pixels) and pixelation (block size) at the strength "
                  f"whose TMR@FMR=1% under `{baselines['reference_matcher']}` is closest to the "
                  f"SAN's on OP ({_cell(baselines['target_tmr'])}): compare their gender error "
                  "in the first table with OP's.\n",
                  "".join(_baseline_line(kind, choice, baselines["target_tmr"])
                          for kind, choice in baselines["chosen"].items())]
    if metrics.get("notes"):
        parts += ["## Notes\n", "".join(f"- {note}\n" for note in metrics["notes"])]
    if metrics.get("files"):
        parts += ["## Files\n", "".join(f"- `{f}`\n" for f in metrics["files"])]
    return "\n".join(parts)


def _baseline_line(kind: str, choice: dict, target: float) -> str:
    line = (f"- {kind}: {choice['parameter']}={choice['strength']:g}, "
            f"TMR@FMR=1% {_cell(choice['tmr'])}")
    if abs(choice["tmr"] - target) > 0.02:
        # The searched range could not reach the SAN's point: the reader must know.
        line += f" (the closest reachable; the SAN's OP is at {_cell(target)})"
    return line + "\n"


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib, Agg: no display on servers).
# ---------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(path: Path, title: str, curves: dict, xlabel: str, ylabel: str,
             log_x: bool = False) -> None:
    """One ROC curve per condition: `curves[condition] = (fpr, tpr)`."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 4.5), dpi=100)
    for condition, (fpr, tpr) in curves.items():
        axes.step(fpr, tpr, where="post", label=CONDITION_TITLES.get(condition, condition))
    if log_x:
        axes.set_xscale("log")
        axes.set_xlim(1e-4, 1)
    else:
        axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel, ylim=(0, 1.01))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_grid(path: Path, columns: dict) -> None:
    """A face per row, one column per condition: `columns[condition] = images [N, H, W, C]`."""
    plt = _pyplot()
    names = list(columns)
    count = len(next(iter(columns.values())))
    figure, axes = plt.subplots(count, len(names), figsize=(1.3 * len(names), 1.3 * count),
                                dpi=100, squeeze=False)
    for column, name in enumerate(names):
        for row in range(count):
            image = np.clip(columns[name][row], 0, 1)
            axis = axes[row][column]
            axis.imshow(image[..., 0] if image.shape[-1] == 1 else image,
                        cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=1,
                        interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(CONDITION_TITLES.get(name, name), fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
