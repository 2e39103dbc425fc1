"""Framework-free config helpers of the OFA-KD task (the PyTorch twin has the same file)."""
import copy
import hashlib
import json
from pathlib import Path

# Token and position embeddings are never decayed (timm ``no_weight_decay``), nor are 1-D parameters.
NO_DECAY_LEAVES = ("pos_embed", "cls_token", "dist_token", "relative_position_bias_table")


def is_no_decay(name, ndim):
    return ndim <= 1 or name.rsplit(".", 1)[-1] in NO_DECAY_LEAVES


def distiller_kwargs(cfg):
    """``OFADistiller`` keyword arguments from ``distill.*`` and ``data.img_size``."""
    d = cfg.distill
    return {"img_size": int(cfg.data.img_size), "stages": tuple(int(s) for s in d.stages), "eps": list(d.eps),
            "temperature": float(d.temperature), "gt_weight": float(d.gt_weight), "kd_weight": float(d.kd_weight),
            "ofa_weight": float(d.ofa_weight), "mode": d.mode, "log_impl": d.log_impl,
            "prefix_token_source": d.prefix_token_source}


def teacher_cache_path(cfg, framework):
    """Cache file of the pre-trained demo teacher, keyed by everything that determines its training."""
    plain = cfg.to_dict()
    key = {"data": plain["data"], "aug": plain["aug"], "teacher_cfg": plain["teacher"], "name": cfg.model.teacher,
           "kwargs": plain["model"].get("teacher_kwargs"), "seed": cfg.train.seed}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]
    root = Path(cfg.teacher.cache_dir or Path(cfg.train.output_dir or "runs") / "ofakd_teachers")
    return root / f"{cfg.model.teacher}_{digest}_{framework}.npz"


def teacher_pretrain_config(cfg, num_classes):
    """A classification config that trains ``model.teacher`` with CE for ``teacher.pretrain_epochs``."""
    t = cfg.teacher
    tcfg = copy.deepcopy(cfg)
    tcfg.model = type(cfg)({"name": cfg.model.teacher, "num_classes": num_classes, "drop_path_rate": 0.0,
                            "kwargs": copy.deepcopy(cfg.model.teacher_kwargs or {})})
    tcfg.train.epochs = int(t.pretrain_epochs)
    tcfg.train.max_steps = 0
    tcfg.train.eval_interval = 0
    tcfg.train.resume = None
    tcfg.optim.name = t.optim
    tcfg.optim.lr = float(t.lr)
    tcfg.optim.weight_decay = float(t.weight_decay)
    tcfg.ema.enabled = False
    return tcfg


def weights_are_native(state, names):
    """True when every parameter name of the target network is a key of ``state`` (same framework)."""
    return set(names) <= set(state)
