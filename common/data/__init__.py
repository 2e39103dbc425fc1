"""Framework-free data pipelines (numpy/OpenCV/PIL): datasets, transforms and batch iterators."""
