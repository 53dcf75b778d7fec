"""`semiadv-evaluate`: judges an exported SAN with classifiers and matchers, seen and unseen.

- `evaluate`: the whole evaluation, putting the pieces below together; `config` says what it runs.
- `perturber`: the export under evaluation, run on arrays of faces.
- `evaluators`: the auxiliary, independent and plugged-in classifiers and matchers;
  `plugins` (the evaluator interface), `independent` (the unseen networks trained here),
  `dlib_matcher` and `onnx_matcher` (third-party matchers, with `landmarks` to align faces).
- `gender_section`, `matching`, `fidelity`, `baselines`: the parts of the report.
- `metrics`: error rates, ROC curves, TMR at FMR; `report`: metrics.json, report.md, plots.
"""
