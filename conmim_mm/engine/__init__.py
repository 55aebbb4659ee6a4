from .checkpoint import allow_mmengine_checkpoints
from .checkpoint_loaders import (CheckpointLoadError, UnreadableCheckpointError,  # noqa: F401
                                 UnsafeCheckpointError, register_weights_only_loaders)
from .hooks import *  # noqa: F401,F403
from .loops import RecipeEpochBasedTrainLoop, RecipeIterBasedTrainLoop  # noqa: F401
from .optimizers import *  # noqa: F401,F403
from .stored_config import (StoredConfigText, StoredConfigTextError,  # noqa: F401
                            refuse_stored_config_text)
from .recipe import ScheduleLengthError, TotalBatchError  # noqa: F401

allow_mmengine_checkpoints()
register_weights_only_loaders()
refuse_stored_config_text()
