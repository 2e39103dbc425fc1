"""PyTorch-side helpers shared by every family."""
