"""The pieces of `semiadv.evaluate`: metrics, plug-in evaluators, independent nets, baselines
and the report. `semiadv.evaluate.evaluate` puts them together."""
