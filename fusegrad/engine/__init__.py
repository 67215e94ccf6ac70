"""Graph -> kernels (schedule), and running them on a device (realize)."""
