"""What `semiadv-evaluate` evaluates and how: `EvaluationConfig`."""

from __future__ import annotations

import dataclasses

from semiadv.config import DataConfig, StageConfig
from semiadv.data import specs
from semiadv.evaluation.attackers import AttackerConfig
from semiadv.evaluation.attribute_readers import AttributeConfig
from semiadv.evaluation.foreign import ForeignConfig
from semiadv.evaluation.independent import IndependentConfig
from semiadv.evaluation.whole_photos import WholePhotoConfig


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """What to evaluate and how.

    Attributes:
      export: export version dir, or model dir (its highest version).
      output_dir: where metrics.json, report.md and the PNGs go.
      data: the gender test set: its `test` split is evaluated, its `validation` split trains
        the independent networks. Must be the data config the SAN was trained with, so the
        three splits are disjoint.
      identity_dataset: optional dataset spec with identities for the matching tests when
        `data` has none (e.g. UTKFace); same size, channels and split seed as `data`.
      workdir: the SAN's training work dir, for its auxiliary gender CNN and matcher
        (None: leave them out).
      eval_workdir: cache of the independent networks, shared by evaluations of any export.
      evaluators: `module:factory` specs of plugged-in classifiers and matchers.
      onnx_matchers: `path[?settings]` specs of ONNX face matchers
        (`semiadv.evaluation.onnx_matcher`).
      gender_classifiers: `path[?settings]` specs of Keras or ONNX gender classifier files
        (`semiadv.evaluation.gender_file`).
      entry_points: also load every factory of the `semiadv.evaluators` entry-point group.
      independent: train (or reuse) the independent classifier and matcher.
      independent_gender, independent_matcher: their training set-up.
      foreign: the package-built foreign gender classifiers (HOG + logistic regression, a
        separable CNN at a larger input; `semiadv.evaluation.foreign`): which, and how trained.
      attackers: the adaptive attacker and the linear probes on the matchers' embeddings,
        reported apart from the verdict (`semiadv.evaluation.attackers`).
      attributes: the per-attribute evaluation (age group, race, age per choice) and its
        readers (`semiadv.evaluation.attribute_readers`).
      whole_photos: the edit on whole photos, faces re-detected and re-cropped
        (`semiadv.evaluation.whole_photos`; off by default).
      max_examples: test faces read from each set, spread over it (by person where it has
        identities; `semiadv.evaluation.sampling`), in a fixed order.
      impostors_per_probe: impostor pairs sampled per probe.
      baselines: search the blur and pixelation strengths matching OP's TMR@FMR=1%.
      save_grid: write grid.png of faces (None: only for the synthetic dataset, because the
        grid shows real faces otherwise).
      grid_faces: faces (rows) in the grid.
      batch_size: images per call of the export and the evaluators.
      seed: seed of the impostor sampling.
    """

    export: str
    output_dir: str
    data: DataConfig = DataConfig()
    identity_dataset: str | None = None
    workdir: str | None = None
    eval_workdir: str = "models/evaluation"
    evaluators: tuple[str, ...] = ()
    onnx_matchers: tuple[str, ...] = ()
    gender_classifiers: tuple[str, ...] = ()
    entry_points: bool = True
    independent: bool = True
    independent_gender: IndependentConfig = IndependentConfig()
    independent_matcher: IndependentConfig = IndependentConfig(
        stage=StageConfig(steps=600, learning_rate=1e-4))
    foreign: ForeignConfig = ForeignConfig()
    attackers: AttackerConfig = AttackerConfig()
    attributes: AttributeConfig = AttributeConfig()
    whole_photos: WholePhotoConfig = WholePhotoConfig()
    max_examples: int | None = 2000
    impostors_per_probe: int = 50
    baselines: bool = True
    save_grid: bool | None = None
    grid_faces: int = 6
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self):
        if self.identity_dataset is not None:
            specs.parse_spec(self.identity_dataset)  # Fails early, naming the spec.
        if self.onnx_matchers:
            from semiadv.evaluation import onnx_matcher

            for spec in self.onnx_matchers:
                onnx_matcher.parse_spec(spec)  # Fails early, naming the setting.
        if self.gender_classifiers:
            from semiadv.evaluation import gender_file

            for spec in self.gender_classifiers:
                gender_file.parse_spec(spec)  # Fails early, naming the setting.
        for name in ("impostors_per_probe", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_examples is not None and self.max_examples < 2:
            raise ValueError(f"max_examples must be at least 2 (or None), got {self.max_examples}")
        if self.grid_faces < 1:
            raise ValueError(f"grid_faces must be positive, got {self.grid_faces}")

    @property
    def grid_enabled(self) -> bool:
        """Whether grid.png is written (by default only for synthetic faces)."""
        if self.save_grid is None:
            return specs.parse_spec(self.data.dataset).kind == "synthetic"
        return self.save_grid
