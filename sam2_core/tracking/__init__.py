"""Objects, prompts, propagation, corrections and the memory bank policy."""
