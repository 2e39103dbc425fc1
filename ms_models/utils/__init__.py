"""MindSpore-side helpers shared by every family."""
