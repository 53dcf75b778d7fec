"""The pieces of `semiadv.evaluation.evaluate`: metrics, plug-in evaluators, independent nets, baselines
and the report. `semiadv.evaluation.evaluate.evaluate` puts them together."""
