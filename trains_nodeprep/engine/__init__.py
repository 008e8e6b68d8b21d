"""facts -> plan -> apply -> verify: the data, the planner that runs every requirement module,
the converge loop for one node, and the fan-out over many."""
