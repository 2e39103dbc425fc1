"""Shared small CFAM configuration and weight copying for the cfam parity tests."""
import torch

from common.config import load_config
from common.data.person_retrieval import RetrievalData
from ms_models.cfam.task import CFAMTask as MsTask
from ms_models.utils.weights import load_pt_state_into
from pt_reference.cfam.task import CFAMTask as PtTask
from pt_reference.utils.weights import state_numpy as pt_numpy

SMALL = [
    "model.embed_dim=32", "model.vision_width=32", "model.vision_layers=1", "model.vision_heads=2",
    "model.vision_patch_size=8", "model.text_width=32", "model.text_layers=1", "model.text_heads=2",
    "model.text_length=40", "model.num_queries=4", "model.decoder_layers=1", "model.decoder_heads=2",
    "model.match_heads=2", "model.mlm_depth=1", "model.mlm_heads=2", "data.img_size=[32,16]",
    "data.synthetic_ids=12", "data.synthetic_images_per_id=2", "data.batch_size=8",
]


def small_cfg(*overrides):
    return load_config("configs/cfam/demo.yaml", SMALL + list(overrides))


def task_pair(cfg, seed=0):
    """MindSpore and PyTorch tasks on the same data with the PyTorch initial weights copied over."""
    data = RetrievalData(cfg)
    torch.manual_seed(seed)
    pt = PtTask(cfg, data)
    ms_task = MsTask(cfg, data)
    load_pt_state_into(ms_task.model, pt_numpy(pt.model))
    return ms_task, pt
