"""Framework-free evaluation metrics (numpy, pycocotools)."""
