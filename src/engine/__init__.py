"""Training engine: schedules, optimiser, the AMP train step with EMA, evaluation, checkpoints, logs."""
