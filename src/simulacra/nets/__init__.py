"""Networks: the transformer with named activations (`simulacra.nets.transformer`)."""

from simulacra.nets.transformer import Hooks, KVCache, Transformer, TransformerConfig, activation_names

__all__ = ["Hooks", "KVCache", "Transformer", "TransformerConfig", "activation_names"]
