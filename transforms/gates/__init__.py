"""The run's gates: the checks a protected output must pass before it is published."""
