"""simulacra: grow simulators and agents from the same worlds and data, and tell them apart."""

__version__ = "0.2.0"
