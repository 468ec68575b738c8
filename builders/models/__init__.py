"""Model loading for the builders: Hub ids, local folders, GGUF files, packaged offline models, variants."""

from llkl_db.builders.models.load import LoadedModel, load_model
from llkl_db.builders.models.offline import OFFLINE_MODELS, offline_model
from llkl_db.builders.models.variants import VARIANTS, apply_variant, variant_load_kwargs

__all__ = [
    "OFFLINE_MODELS",
    "VARIANTS",
    "LoadedModel",
    "apply_variant",
    "load_model",
    "offline_model",
    "variant_load_kwargs",
]
