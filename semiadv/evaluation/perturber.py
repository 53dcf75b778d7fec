"""The export under evaluation, run on arrays of faces through its `<kind>_labelled` signatures."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from semiadv.config import HIDEABLE_ATTRIBUTES, DataConfig
from semiadv.evaluation import metrics
from semiadv.export import choice_names, locate
from semiadv.prototypes.kinds import KINDS


class Perturber:
    """The export's `<kind>_labelled` signatures: prototypes follow the true gender where it is
    known (as in the paper), the export's own gender CNN where it is not (male = -1). An export
    with only the unlabelled `<kind>` signatures (a choice export) is run through those: the
    export's own gender CNN picks every prototype (`labelled` is then False).

    Attributes:
      path: the export version dir.
      image_shape: (H, W, C) of the faces the export takes.
      labelled: whether the gender signatures take the true gender.
      choices: {hide_* signature of the export: the attributes it hides}, in
        `choice_names.hide_signatures` order ({} for a gender-only export).
    """

    def __init__(self, export_path: str):
        self.path = locate.resolve_export(export_path)
        self._loaded = tf.saved_model.load(str(self.path))  # Kept: signatures read its variables.
        signatures = self._loaded.signatures
        self.labelled = all(f"{kind}_labelled" in signatures for kind in KINDS)
        if not self.labelled and not all(kind in signatures for kind in KINDS):
            missing = [f"{kind}_labelled" for kind in KINDS
                       if f"{kind}_labelled" not in signatures]
            raise ValueError(f"export {self.path} lacks signature(s) {missing}; re-export it "
                             "with semiadv-export")
        first = signatures["same_labelled" if self.labelled else "same"]
        _, inputs = first.structured_input_signature
        self.image_shape = tuple(int(size) for size in inputs["image"].shape[1:])
        every = choice_names.hide_signatures(HIDEABLE_ATTRIBUTES)
        self.choices = {name: attributes for name, attributes in every.items()
                        if name in signatures}

    def run(self, signature: str, images: np.ndarray, batch_size: int) -> np.ndarray:
        """The `perturbed` output of an image-only signature (e.g. `hide_race`) on `images`."""
        parts = [self._loaded.signatures[signature](
                     image=tf.constant(images[start:start + batch_size], tf.float32))
                 ["perturbed"].numpy() for start in range(0, len(images), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, *self.image_shape), np.float32)

    def check_input_shape(self, config: DataConfig) -> None:
        """Raises ValueError, naming the export, unless it takes `config`'s faces."""
        wanted = (config.image_size, config.image_size, config.channels)
        if self.image_shape != wanted:
            raise ValueError(f"export {self.path} takes {self.image_shape} faces but the data "
                             f"config gives {wanted}: set --image_size and --channels to match")

    def __call__(self, images: np.ndarray, male: np.ndarray, batch_size: int,
                 kinds: tuple[str, ...] = KINDS) -> dict:
        """{kind: the outputs [N, H, W, C] for images [N, H, W, C]} for each of `kinds`
        (default "same", "neutral" and "opposite")."""
        if not self.labelled:
            return {kind: self.run(kind, images, batch_size) for kind in kinds}
        outputs = {kind: [] for kind in kinds}
        labels = np.where(metrics.known_gender(male), male, -1).astype(np.float32)
        for start in range(0, len(images), batch_size):
            image = tf.constant(images[start:start + batch_size], tf.float32)
            label = tf.constant(labels[start:start + batch_size])
            for kind in kinds:
                result = self._loaded.signatures[f"{kind}_labelled"](image=image, male=label)
                outputs[kind].append(result["perturbed"].numpy())
        return {kind: np.concatenate(parts) for kind, parts in outputs.items()}
