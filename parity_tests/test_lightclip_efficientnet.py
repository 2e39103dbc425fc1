"""EfficientNet-Lite0: the packaged ImageNet weights load strictly into the PyTorch twin, which equals
timm's ``tf_efficientnet_lite0`` (independent implementation) on them, and the MindSpore twin
matches in eval mode after conversion."""
import mindspore as ms
import numpy as np
import timm
import torch

from harness import assert_close, copy_pt_to_ms
from ms_models.backbones.efficientnet_lite import EfficientNetLite as MsLite
from pt_reference.backbones.efficientnet_lite import efficientnet_lite0, load_lite0_state


def _image(seed=0, size=64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, 3, size, size)).astype(np.float32)


def test_lite0_weights_strict_and_equal_timm_and_mindspore():
    pt = efficientnet_lite0(pretrained=True).eval()
    state = load_lite0_state()
    ref = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    ref_keys = [k for k in ref.state_dict()]
    src = [v for k, v in state.items()]
    assert len(ref_keys) == len(src)
    ref.load_state_dict({k: v for k, v in zip(ref_keys, src)}, strict=True)
    x = _image()
    with torch.no_grad():
        out_pt = pt(torch.from_numpy(x)).numpy()
        out_ref = ref(torch.from_numpy(x)).numpy()
    assert np.abs(out_pt - out_ref).max() <= 1e-4 * max(1.0, np.abs(out_ref).max())
    ms_net = MsLite()
    copy_pt_to_ms(pt, ms_net)
    ms_net.set_train(False)
    out_ms = ms_net(ms.Tensor(x)).asnumpy()
    assert_close("efficientnet_lite0_logits", out_ms, out_pt, "forward")
    feat_ms = ms_net.forward_features(ms.Tensor(x)).asnumpy()
    with torch.no_grad():
        feat_pt = pt.forward_features(torch.from_numpy(x)).numpy()
    assert feat_pt.shape == (2, 1280, 2, 2)
    assert_close("efficientnet_lite0_features", feat_ms, feat_pt, "forward")
