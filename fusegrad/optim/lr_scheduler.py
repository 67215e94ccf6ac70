"""Learning-rate schedulers (written by a later step)."""
