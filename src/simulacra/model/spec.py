"""The model spec: what a trajectory model *is*, apart from how it was trained.

A `ModelSpec` holds the token format's conditioning slots (a character tag in the prompt, a
return-to-go before every state) and the transformer's architecture. Together with a world it
fixes the token format (`ModelSpec.format(world)`) and the network (`ModelSpec.transformer(fmt)`),
so a checkpoint that stores the spec and the world rebuilds exactly the same model.

Training configs extend it: `training.predict.PredictConfig` is a `ModelSpec` with the fields of
a prediction run (which tokens carry loss, steps, batch size, learning rate …).
"""

from __future__ import annotations

import dataclasses

from simulacra.corpus.tokens import TrajectoryFormat
from simulacra.nets.transformer import DTYPES, TransformerConfig
from simulacra.world.params import WorldParams


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A trajectory transformer's format flags and architecture (recorded in the model card)."""

    character: bool = False
    """Put the acting character's tag in the prompt."""
    rtg: bool = False
    """Put the return still to come before every state (a Decision Transformer)."""
    d_model: int = 128
    """Residual width."""
    n_layers: int = 2
    """Transformer blocks."""
    n_heads: int = 4
    """Attention heads."""
    d_mlp: int = 512
    """MLP width."""
    grid: bool = False
    """Add the grid embedding: shared row and column vectors for the agent's cell tokens and
    the scene's tiles (`nets.transformer`), for generalising to unseen layouts."""
    rtg_numeric: bool = False
    """Embed each return-to-go token as its number (a learned line, as the original Decision
    Transformer), not by a row of its own: targets between the returns seen in training then
    fall between them (`nets.transformer`, numeric tokens). Needs `rtg`."""

    dtype: str = "float32"
    """Compute precision of the network: "float32", or "bfloat16" (mixed precision: float32
    parameters and optimiser state, bfloat16 matrix products; `nets.transformer`)."""
    future_heads: int = 1
    """Multi-token prediction: heads for the next 1 … n tokens from a shared trunk (training
    scores every head; acting and the lenses use head 1, the next token; `nets.transformer`)."""

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.dtype not in DTYPES:
            raise ValueError(f"invalid {name}.dtype={self.dtype!r}: one of {', '.join(DTYPES)}")
        if self.rtg_numeric and not self.rtg:
            raise ValueError(f"invalid {name}: rtg_numeric=True needs rtg=True (there are no return-to-go tokens)")
        for f in ("d_model", "n_layers", "n_heads", "d_mlp", "future_heads"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"invalid {name}.{f}={v!r}: must be an integer, at least 1")

    @classmethod
    def of(cls, config) -> "ModelSpec":
        """The spec part of a config that extends it (a `PredictConfig`), or of a card's dict."""
        names = [f.name for f in dataclasses.fields(cls)]
        if isinstance(config, dict):
            return cls(**{k: config[k] for k in names if k in config})
        return cls(**{k: getattr(config, k) for k in names})

    def format(self, world: WorldParams) -> TrajectoryFormat:
        """The token format of this model in `world`."""
        return TrajectoryFormat(world, character=self.character, rtg=self.rtg)

    def transformer(self, fmt: TrajectoryFormat) -> TransformerConfig:
        """The network for the format `fmt`."""
        side, tokens, positions = fmt.grid() if self.grid else (0, (), ())
        ids, values = fmt.rtg_values() if self.rtg_numeric else ((), ())
        return TransformerConfig(
            vocab_size=fmt.vocab_size,
            context=fmt.length,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            d_mlp=self.d_mlp,
            grid_side=side,
            grid_tokens=tokens,
            grid_positions=positions,
            numeric_ids=ids,
            numeric_values=values,
            dtype=self.dtype,
            future_heads=self.future_heads,
        )
