"""The export under evaluation, run on arrays of faces through its `<kind>_labelled` signatures."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from semiadv.config import DataConfig
from semiadv.evaluation import metrics
from semiadv.export import locate
from semiadv.prototypes.kinds import KINDS


class Perturber:
    """The export's `<kind>_labelled` signatures: prototypes follow the true gender where it is
    known (as in the paper), the export's own gender CNN where it is not (male = -1).

    Attributes:
      path: the export version dir.
      image_shape: (H, W, C) of the faces the export takes.
    """

    def __init__(self, export_path: str):
        self.path = locate.resolve_export(export_path)
        self._loaded = tf.saved_model.load(str(self.path))  # Kept: signatures read its variables.
        missing = [f"{kind}_labelled" for kind in KINDS
                   if f"{kind}_labelled" not in self._loaded.signatures]
        if missing:
            raise ValueError(f"export {self.path} lacks signature(s) {missing}; re-export it "
                             "with semiadv-export")
        _, inputs = self._loaded.signatures["same_labelled"].structured_input_signature
        self.image_shape = tuple(int(size) for size in inputs["image"].shape[1:])

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
        outputs = {kind: [] for kind in kinds}
        labels = np.where(metrics.known_gender(male), male, -1).astype(np.float32)
        for start in range(0, len(images), batch_size):
            image = tf.constant(images[start:start + batch_size], tf.float32)
            label = tf.constant(labels[start:start + batch_size])
            for kind in kinds:
                result = self._loaded.signatures[f"{kind}_labelled"](image=image, male=label)
                outputs[kind].append(result["perturbed"].numpy())
        return {kind: np.concatenate(parts) for kind, parts in outputs.items()}
