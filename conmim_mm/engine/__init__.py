from .checkpoint import allow_mmengine_checkpoints
from .checkpoint_loaders import UnsafeCheckpointError, register_weights_only_loaders
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403

allow_mmengine_checkpoints()
register_weights_only_loaders()
