"""The model stage: what a trained trajectory model is, how it acts and dreams, how it is stored.

    from simulacra.model import ModelSpec, Simulator
    sim = Simulator.load("runs/dt")                 # verified checkpoint (msgpack + model card)
    episodes = sim.act(jax.random.PRNGKey(0), 256, target=1.0)

* `spec.py`        `ModelSpec`: the token format's conditioning slots and the architecture;
* `simulator.py`   `Simulator`: spec, format, weights and card; `act`, `dream` and their pure
                   pieces `make_act`, `make_dream`;
* `checkpoint.py`  parameters in msgpack and a JSON card, written atomically, loaded verified.

Training (`simulacra.training`) produces models and imports this package; nothing here imports
training.
"""

from simulacra.model.checkpoint import CheckpointError
from simulacra.model.simulator import ActRecord, Simulator, episodes_of, make_act, make_dream
from simulacra.model.spec import ModelSpec

__all__ = ["ActRecord", "CheckpointError", "ModelSpec", "Simulator", "episodes_of", "make_act", "make_dream"]
