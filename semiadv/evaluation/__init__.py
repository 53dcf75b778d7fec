"""`semiadv-evaluate`: judges an exported SAN with classifiers and matchers, seen and unseen.

- `evaluate`: the whole evaluation, putting the pieces below together; `config` says what it runs.
- `perturber`: the export under evaluation, run on arrays of faces.
- `evaluators`: the auxiliary, independent and plugged-in classifiers and matchers;
  `plugins` (the evaluator interface), `independent` (the unseen networks trained here),
  `dlib_matcher` and `onnx_matcher` (third-party matchers, with `landmarks` to align faces).
- `gender_section`, `matching`, `fidelity`, `baselines`: the parts of the report;
  `attribute_section` (what each choice hides and keeps, read by `attribute_readers`) and
  `whole_photos` (the edit on whole photos, re-detected and re-cropped).
- `sampling`: which faces of a split are read when fewer than all (spread over it).
- `metrics`: error rates, ROC curves, TMR at FMR; `report`: metrics.json, report.md, plots.
"""
