"""The reliability battery: the promises of DESIGN.md under injected faults."""
