"""PNG grid of detections next to ground truth (OpenCV drawing, no display needed)."""
import os

import cv2
import numpy as np

_PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
            (240, 50, 230), (210, 245, 60), (250, 190, 190), (0, 128, 128), (170, 110, 40), (128, 0, 0))


def class_colour(cls):
    """RGB colour of a class index."""
    return _PALETTE[int(cls) % len(_PALETTE)]


def _tile(image, boxes, classes, scores, class_names, title, tile_size):
    h, w = image.shape[:2]
    r = tile_size / max(h, w)
    tile = np.full((tile_size + 22, tile_size, 3), 255, np.uint8)
    tile[22:22 + int(round(h * r)), :int(round(w * r))] = cv2.resize(
        image, (int(round(w * r)), int(round(h * r))), interpolation=cv2.INTER_AREA)
    cv2.putText(tile, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for k, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * r):
        colour = class_colour(classes[k])
        p1, p2 = (int(x1), int(y1) + 22), (int(x2), int(y2) + 22)
        cv2.rectangle(tile, p1, p2, colour, 2)
        name = class_names[int(classes[k])] if int(classes[k]) < len(class_names) else str(int(classes[k]))
        text = name if scores is None else f"{name} {scores[k]:.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        ty = max(p1[1], 22 + th + 2)
        cv2.rectangle(tile, (p1[0], ty - th - 3), (p1[0] + tw + 2, ty), colour, -1)
        cv2.putText(tile, text, (p1[0] + 1, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def plot_detection_grid(images, predictions, ground_truths, class_names, path, score_thr=0.25, max_images=8,
                        pairs_per_row=2, tile_size=320):
    """Save a PNG where each image appears twice: predictions (left) and ground truth (right).

    Args:
        images: list of RGB uint8 (h, w, 3) images.
        predictions: list of (k, 6) [x1, y1, x2, y2, score, class] in the pixels of each image;
            detections below ``score_thr`` are not drawn.
        ground_truths: list of (m, 5) [class, x1, y1, x2, y2] in the same pixels.
        class_names: name of each class index.
        path: output PNG path (written atomically).
    Returns:
        the path.
    """
    n = min(len(images), max_images)
    if n == 0:
        raise ValueError("plot_detection_grid: no images to plot")
    tiles = []
    for img, pred, gt in zip(images[:n], predictions[:n], ground_truths[:n]):
        pred = np.asarray(pred, dtype=np.float64).reshape(-1, 6)
        pred = pred[pred[:, 4] >= score_thr]
        gt = np.asarray(gt, dtype=np.float64).reshape(-1, 5)
        tiles.append(_tile(img, pred[:, :4], pred[:, 5], pred[:, 4], class_names,
                           f"prediction ({len(pred)} >= {score_thr:g})", tile_size))
        tiles.append(_tile(img, gt[:, 1:], gt[:, 0], None, class_names, f"ground truth ({len(gt)})", tile_size))
    cols = 2 * pairs_per_row
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (-len(tiles) % cols)
    rows = [np.hstack([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=200) for t in tiles[i:i + cols]])
            for i in range(0, len(tiles), cols)]
    grid = np.vstack(rows)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.png"
    if not cv2.imwrite(tmp, grid[:, :, ::-1]):
        raise OSError(f"plot_detection_grid: could not write {path}")
    os.replace(tmp, path)
    return path
