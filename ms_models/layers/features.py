"""Selection of intermediate features, as timm's ``feature_take_indices``."""


def take_indices(num_features, indices):
    """timm ``feature_take_indices``: None -> all, int n -> last n, list -> those (negative from the end).

    Returns (absolute indices in the given order, max index).
    """
    if indices is None:
        indices = num_features
    if isinstance(indices, int):
        if not 0 < indices <= num_features:
            raise ValueError(f"last-n ({indices}) is out of range (1 to {num_features})")
        taken = [num_features - indices + i for i in range(indices)]
    else:
        taken = [num_features + i if i < 0 else i for i in indices]
        bad = [i for i in taken if not 0 <= i < num_features]
        if bad:
            raise ValueError(f"feature indices {bad} are out of range (0 to {num_features - 1})")
    return taken, max(taken)
