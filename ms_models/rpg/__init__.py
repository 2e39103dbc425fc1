"""RPG (arXiv 2311.17493): gradual global pruning with RigL regrowth and the adversarial rank loss (MindSpore)."""
from . import cifar_resnet  # noqa: F401  (registers rpg_cifar_resnet*)
from . import task  # noqa: F401  (registers rpg_sparse)
