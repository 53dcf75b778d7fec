"""The text the main job ends with: what was trained, where it went, what it does, what next.

Written for a person who just ran `semiadv-train`: one plain line per number, saying what it
measures and which way is good, and the next commands with the run's real paths filled in.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from semiadv.config import TrainConfig
from semiadv.train import flow

_PRECISIONS = {
    "none": "float32",
    "bfloat16": "mixed bfloat16 (bfloat16 compute, float32 weights)",
}


def _steps(count: int) -> str:
    return f"{count} steps" if count else "skipped (0 steps)"


def _autoencoder_kind(config: TrainConfig) -> str:
    network = config.networks
    kind = "residual" if network.residual else "re-synthesising (the paper's)"
    return f"{kind} autoencoder, {network.upsampling} upsampling"


def _matcher_kind(config: TrainConfig) -> str:
    if config.matcher_network == "triplet":
        return f"triplet loss, {_steps(config.matcher.steps)}"
    if config.matcher_finetune:
        return (f"dlib's face recognition ResNet, fine-tuned with the triplet loss for "
                f"{_steps(config.matcher.steps)}")
    return "dlib's face recognition ResNet, converted (not trained here)"


def trained_lines(config: TrainConfig) -> list[str]:
    """The stages of the run, each with its steps."""
    lines = [f"  gender CNN (auxiliary classifier): {_steps(config.gender.steps)}"]
    for attribute in reversed(config.attribute_classifiers):  # Right after the gender CNN.
        lines.insert(1, f"  {attribute.replace('_', ' ')} classifier (auxiliary, "
                        f"{attribute}): {_steps(config.gender.steps)}")
    start = 1 + len(config.attribute_classifiers)
    for member in range(1, config.gender_ensemble + 1):
        lines.append(f"  extra gender classifier gender_{member}: {_steps(config.gender.steps)}")
    lines += [
        f"  face matcher: {_matcher_kind(config)}",
        f"  autoencoder pre-training: {_steps(config.autoencoder.steps)}",
        f"  SAN ({_autoencoder_kind(config)}): {_steps(config.san.steps)}"
        + (f", choosing per face which of {', '.join(config.choice_attributes)} to hide"
           if config.hide_attributes else ""),
    ]
    for link in range(2, config.flow_links + 1):
        auxiliary = flow.auxiliary_index(config, link)
        lines.insert(start + config.gender_ensemble + link - 2,
                     f"  gender classifier of link {link}, gender_{auxiliary}: "
                     f"{_steps(config.gender.steps)}")
        lines.append(f"  SAN link {link} (san_{link}, on link {link - 1}'s outputs): "
                     f"{_steps(config.san.steps)}")
    return lines


def _percent(value: float) -> str:
    return f"{value:.0%}"


def number_lines(summary: dict) -> list[str]:
    """One line per held-out number: value, what it means, which way is good."""
    rows = [
        ("flip rate on OP", _percent, "flip_rate_opposite",
         "share of held-out faces the auxiliary classifier reads as the other gender after "
         "perturbation with the opposite prototype (higher hides gender better)"),
        ("gender accuracy on originals", _percent, "accuracy_original",
         "the auxiliary classifier on the untouched faces (high: it is a fair attacker)"),
        ("gender accuracy on SM", _percent, "accuracy_same",
         "the same classifier on the same-gender rendering (high: SM keeps the gender)"),
        ("SSIM(original, SM)", "{:.3f}".format, "ssim_same",
         "structural similarity of the same-gender rendering to the face, 1 = identical "
         "(higher keeps the face better)"),
        ("SSIM(original, OP)", "{:.3f}".format, "ssim_opposite",
         "structural similarity of the opposite-gender rendering, the exported output, to the "
         "face (higher keeps the face better)"),
        ("matcher distance original-SM", "{:.4f}".format, "match_distance_same",
         "squared distance between the matcher's embeddings of a face and of its SM rendering "
         "(lower keeps the identity better)"),
        ("matcher distance original-OP", "{:.4f}".format, "match_distance_opposite",
         "the same for the OP rendering (lower keeps the identity better)"),
        ("matcher distance between different faces", "{:.4f}".format,
         "match_distance_impostor",
         "the scale to read the two above against: far below it, the person is still "
         "recognised"),
    ]
    return [f"  {label} {fmt(summary[key])} — {meaning}"
            for label, fmt, key, meaning in rows if key in summary]


def _command(*words: str) -> str:
    return " ".join(shlex.quote(word) for word in words)


def next_command_lines(config: TrainConfig, export_path: str | None,
                       command_args: list[str]) -> list[str]:
    """The commands to run next, with the run's paths; `command_args` are the flags the
    main job was given (the evaluation reads the same data flags)."""
    if export_path is None:
        return ["  export the trained SAN (this run had no --export_dir): "
                + _command("semiadv-export", f"--workdir={config.workdir}",
                           "--export_dir=exports", f"--export_name={config.export_name}")]
    model_dir = str(Path(export_path).parent)
    models_config = Path(export_path).parents[1] / "models.config"
    evaluation_dir = str(Path(config.workdir) / "eval")
    return [
        "  perturb a folder of photos: "
        + _command("semiadv-perturb", f"--export={model_dir}", "--input_dir=YOUR_PHOTOS",
                   "--output_dir=PRIVATE_PHOTOS",
                   *(["--hide=" + ",".join({"age_group": "age"}.get(name, name)
                                           for name in config.choice_attributes)]
                     if config.hide_attributes else [])),
        "  evaluate with classifiers and matchers it never saw (report.md, plots): "
        + _command("semiadv-evaluate", *command_args, f"--export={model_dir}",
                   f"--output_dir={evaluation_dir}"),
        "  serve it with TF Serving (REST on port 8501): "
        + _command("tensorflow_model_server", "--rest_api_port=8501",
                   f"--model_config_file={models_config}"),
        "  or open it in Python with Keras alone: "
        f"keras.models.load_model({str(Path(export_path) / 'perturber.keras')!r})",
    ]


def text(config: TrainConfig, summary: dict, command_args: list[str] = ()) -> str:
    """The end-of-run summary of `main_job.run`'s `summary` for the run of `config`."""
    export_path = summary.get("export")
    lines = ["semiadv-train finished.", "Trained:", *trained_lines(config)]
    precision = _PRECISIONS.get(config.mixed_precision, config.mixed_precision)
    if config.mixed_precision != "none":
        precision += "; the export computes in float32"
    lines.append(f"Precision: {precision}")
    lines.append(f"Work dir: {Path(config.workdir).resolve()} (config.json, each stage's "
                 "model.keras and TensorBoard logs, summary.json)")
    if export_path:
        lines.append(f"Export: {export_path} (TF Serving SavedModel and perturber.keras)")
    else:
        lines.append("Export: none (--export_dir was empty)")
    strength = (f", with the change scaled by --edit_strength={config.edit_strength:g} as the "
                "export serves it" if config.edit_strength != 1 else "")
    lines.append(f"On {summary.get('examples', 0)} held-out test faces, as the SAN's own "
                 f"auxiliary networks see them{strength} (semiadv-evaluate gives the verdict "
                 "of unseen ones):")
    lines += number_lines(summary)
    lines.append("Next:")
    lines += next_command_lines(config, export_path, list(command_args))
    return "\n".join(lines) + "\n"
