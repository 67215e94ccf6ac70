"""Composite tensor ops, grouped by kind, mixed into `Tensor`. Built only from primitives."""
