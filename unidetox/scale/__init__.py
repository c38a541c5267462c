"""Scale: memory, FLOPs and time estimates, the hardware, and the shipped accelerate configurations."""
