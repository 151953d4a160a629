"""Model registry. Importing this package registers every architecture (one file each)."""

from ferkit.models import deep_cnn, mini_xception, resnet, seed_cnn, simple_cnn, vgg  # noqa: F401  (registration)
from ferkit.models.registry import count_parameters, create_model, list_models, register_model

__all__ = ["count_parameters", "create_model", "list_models", "register_model"]
