"""Models: the registry and the built-in models (importing registers them).

Layer: above preprocessing (channel names), below evaluation and training;
a model never imports the trainer, the store or the dashboard.
"""
from mer_core.models.registry import (  # noqa: F401
    ModelConfig,
    create_model,
    list_models,
    list_presets,
    model_config,
    model_spec,
    train_defaults,
)
from mer_core.models import baseline  # noqa: F401,E402
from mer_core.models import dense_attention  # noqa: F401,E402
from mer_core.models import linear  # noqa: F401,E402
from mer_core.models import mfdan  # noqa: F401,E402
from mer_core.models import ststnet  # noqa: F401,E402
