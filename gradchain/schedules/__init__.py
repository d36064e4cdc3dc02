"""Learning-rate and hyperparameter schedules: functions from the step count to a value."""
__all__: list = []
