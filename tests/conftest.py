import os

# Tests run on the CPU with deterministic single-threaded XLA reductions where it matters.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The CLI's `study run` turns JAX's persistent compilation cache on by default; tests leave the
# user's cache alone (tests/test_compilation.py turns it on in a scratch directory).
os.environ.setdefault("SIMULACRA_COMPILE_CACHE", "off")
# The CLI's `study run` runs calls in worker processes (one per core) by default; tests run them in
# their own process (tests/studies/test_pool.py asks for workers).
os.environ.setdefault("SIMULACRA_WORKERS", "1")
