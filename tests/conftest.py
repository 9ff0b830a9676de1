import os

# Tests run on the CPU with deterministic single-threaded XLA reductions where it matters.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
