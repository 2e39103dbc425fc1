"""Framework-free parts of the Gold-YOLO task: data sets, batch streams and COCO evaluation.

Both task twins (``ms_models.gold_yolo.task`` and ``pt_reference.gold_yolo.task``) call these, so
the two frameworks see the same batches and are scored by the same evaluation code.
"""
import logging
import os
import time

import numpy as np

from common.data.coco import CocoDetection
from common.data.det_loader import REPRO_640_LOAD_SIZE, DetectionBatches, DetectionEvalBatches
from common.data.synthetic_detection import synthetic_detection
from common.metrics.detection import coco_evaluate, detections_to_coco, non_max_suppression
from common.plots_detection import plot_detection_grid

LOGGER = logging.getLogger(__name__)


class GoldYoloData:
    """Training and validation sets named by ``cfg.data``.

    ``cfg.data.root`` null means the built-in synthetic set (generated once, cached, reported);
    otherwise COCO layout: ``<root>/<train_images>`` + ``<root>/<train_ann>`` and the same for val.
    """

    def __init__(self, cfg):
        d = cfg.data
        if d.root is None:
            syn = synthetic_detection(num_train=d.demo_train_images, num_val=d.demo_val_images,
                                      img_size=d.demo_image_size, seed=d.demo_seed)
            print(f"[data] no data.root configured: using the built-in synthetic detection set "
                  f"({d.demo_train_images} train / {d.demo_val_images} held-out images, classes "
                  f"{', '.join(syn.class_names)}) cached at {syn.root}", flush=True)
            self.train_images, self.train_ann = syn.train_images, syn.train_ann
            self.val_images, self.val_ann = syn.val_images, syn.val_ann
            self.is_demo = True
        else:
            root = os.path.expanduser(d.root)
            if not os.path.isdir(root):
                raise FileNotFoundError(f"data.root '{d.root}' is not a folder (expected the COCO layout "
                                        f"with {d.train_images} and {d.train_ann})")
            self.train_images, self.train_ann = os.path.join(root, d.train_images), os.path.join(root, d.train_ann)
            self.val_images, self.val_ann = os.path.join(root, d.val_images), os.path.join(root, d.val_ann)
            self.is_demo = False
        self._train = None
        self._val = None

    @property
    def train(self):
        if self._train is None:
            self._train = CocoDetection(self.train_images, self.train_ann, keep_empty=True, cache_images=self.is_demo)
        return self._train

    @property
    def val(self):
        if self._val is None:
            self._val = CocoDetection(self.val_images, self.val_ann, keep_empty=True, cache_images=self.is_demo)
        return self._val


def train_stream(cfg, data, seed=None):
    """``DetectionBatches`` for ``cfg`` (augmentation names as the official ``hyp``)."""
    aug = dict(cfg.aug)
    return DetectionBatches(data.train, img_size=cfg.data.img_size, batch_size=cfg.train.batch_size,
                            max_boxes=cfg.data.max_boxes, aug_cfg=aug,
                            seed=cfg.train.seed if seed is None else seed, shuffle=True, drop_last=True,
                            mosaic=aug["mosaic"] > 0, augment=cfg.data.augment, workers=cfg.data.workers)


def mosaic_on(cfg, epoch):
    """The recipe turns mosaic (and MixUp) off for the last ``aug.stop_aug_last_n_epoch`` epochs."""
    return cfg.aug.mosaic > 0 and epoch < cfg.train.epochs - cfg.aug_schedule.stop_aug_last_n_epoch


def eval_stream(cfg, data):
    e = cfg.eval
    load_size = e.load_size
    if e.mode == "repro640" and load_size is None:
        load_size = REPRO_640_LOAD_SIZE[cfg.model.variant]
    return DetectionEvalBatches(data.val, img_size=e.img_size or cfg.data.img_size, batch_size=e.batch_size,
                                mode=e.mode, load_size=load_size, workers=cfg.data.workers)


def evaluate(predict, cfg, data, run_dir, max_batches=None):
    """COCO evaluation of ``predict`` on the validation set.

    Args:
        predict: callable (B, 3, H, W) float32 -> (B, A, 5 + nc) decoded eval-mode outputs (numpy).
        run_dir: where ``eval/`` (predictions JSON, AP table) and ``predictions.png`` are written;
            None writes nothing.
    Returns:
        metrics dict: COCO numbers (fractions), ``mAP50_95``/``mAP50`` aliases, ``primary``.
    """
    e = cfg.eval
    stream = eval_stream(cfg, data)
    results, shown = [], []
    t0 = time.perf_counter()
    n_images = 0
    for b, (images, infos) in enumerate(stream):
        if max_batches is not None and b >= max_batches:
            break
        out = np.asarray(predict(images), dtype=np.float32)
        dets = non_max_suppression(out, conf_thres=e.conf_thres, iou_thres=e.iou_thres,
                                   multi_label=e.multi_label, max_det=e.max_det)
        results += detections_to_coco(dets, infos, data.val.category_ids)
        n_images += len(infos)
        if len(shown) < e.plot_images:
            for det, info in zip(dets, infos):
                if len(shown) < e.plot_images:
                    shown.append((det, info))
    elapsed = time.perf_counter() - t0
    out_dir = os.path.join(run_dir, "eval") if run_dir else None
    metrics = coco_evaluate(data.val_ann, results, out_dir=out_dir, verbose=True, image_ids=data.val.image_ids)
    metrics["mAP50_95"], metrics["mAP50"] = metrics["AP"], metrics["AP50"]
    metrics["eval_images"] = n_images
    metrics["eval_seconds"] = elapsed
    metrics["primary"] = "mAP50_95"
    print(f"[eval] {n_images} images: mAP@0.5:0.95 = {metrics['AP']:.4f}, mAP@0.5 = {metrics['AP50']:.4f}", flush=True)
    if run_dir and shown:
        images, preds, gts = [], [], []
        for det, info in shown:
            img = data.val.load_image(info.index)
            if img is None:
                continue
            images.append(np.ascontiguousarray(img[:, :, ::-1]))
            p = det.copy()
            if len(p):
                p[:, :4] = info.to_original(p[:, :4])
            preds.append(p)
            gts.append(data.val.labels[info.index])
        if images:
            path = plot_detection_grid(images, preds, gts, data.val.class_names,
                                       os.path.join(run_dir, "predictions.png"), score_thr=e.plot_score_thr)
            metrics["predictions_png"] = str(path)
    return metrics
