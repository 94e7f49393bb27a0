"""Training engine: schedules, optimiser, the AMP train step with EMA, evaluation, a run's checkpoints, logs."""
