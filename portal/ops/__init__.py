"""Operations: the workers' heartbeat, the health and readiness checks, and the Prometheus metrics.

Nothing here reads or reports a case, a person or a photo: only counts, durations and whether the
database, the broker, the workers and the model files answer.
"""
