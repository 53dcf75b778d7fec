"""Training: a task per stage, the controller that runs it, and the main job over the stages.

- `task` (the base), `gender_tasks`, `ensemble` (the Ensemble SAN's members), `matcher_task`,
  `autoencoder_task`, `san_task`, `attribute_tasks` and `choice_task` (a SAN told per face
  what to hide: `TrainConfig.hide_attributes`): what each stage builds and the per-example
  losses of a step.
- `losses`, `robust`: the loss terms and the adversarial training of the gender CNN.
- `trainer`: the compiled distributed loop, checkpoints, resume and summaries.
- `distribute`, `dtype_policies`: the strategy and the mixed-precision policy.
- `stages`: what trained each stage of a work dir; `main_job`: every stage in order;
  `heldout` and `run_summary`: what the main job reports at the end.
"""
