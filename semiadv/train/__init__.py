"""Training: tasks, losses, the distributed loop, stage records and the main job."""
