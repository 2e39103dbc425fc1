"""Small LightCLIP configuration and a task pair with shared weights for the lightclip parity tests."""
import torch

from common.config import load_config
from common.data.lightclip_shapes import LightCLIPData
from ms_models.lightclip.task import LightCLIPTask as MsTask
from ms_models.utils.weights import load_pt_state_into
from pt_reference.lightclip.task import LightCLIPTask as PtTask
from pt_reference.utils.weights import state_numpy as pt_numpy

SMALL = ["model.tiny_width=8", "model.embed_dim=16", "model.text_width=16", "model.text_layers=2",
         "model.text_heads=2", "model.text_length=24", "model.fusion_every=1", "data.img_size=[32,32]",
         "data.batch_size=8", "data.num_train=64", "data.num_test=16", "data.zs_per_pair=1"]


def small_cfg(*overrides):
    return load_config("configs/lightclip/demo.yaml", SMALL + list(overrides))


def task_pair(cfg, seed=0):
    """MindSpore and PyTorch tasks on the same data with the PyTorch initial weights copied over."""
    data = LightCLIPData(cfg)
    torch.manual_seed(seed)
    pt = PtTask(cfg, data)
    ms_task = MsTask(cfg, data)
    load_pt_state_into(ms_task.model, pt_numpy(pt.model))
    return ms_task, pt
