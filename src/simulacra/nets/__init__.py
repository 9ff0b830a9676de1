"""Networks: the transformer with named activations (`simulacra.nets.transformer`)."""

from simulacra.nets.transformer import Hooks, Transformer, TransformerConfig, activation_names

__all__ = ["Hooks", "Transformer", "TransformerConfig", "activation_names"]
