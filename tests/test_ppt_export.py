"""PPT export: the patched model as MINDIR with an open batch axis reloads and matches the network.

A demo-config ViT shrunk to depth 3 (32 px, 65 tokens; export compiles the graph, the slowest part)
with r=8 at blocks [1, 2], random tie-free weights and a tau
that mixes pooling and pruning in the batch; the exported output must equal the MindSpore network
(forward tolerance) and differ from the same weights without token reduction (the compression is in
the exported graph).
"""
import mindspore as ms
import numpy as np

from common.config import load_config
from common.weights import convert_state_dict
from ms_models.export import export_network, load_exported
from ms_models.ppt.deploy import build_export_net
from ms_models.utils.weights import state_numpy, target_shapes
from tests.test_ppt_reference import pt_names, random_state

SHAPE = "model.kwargs={img_size: 32, patch_size: 4, embed_dim: 64, depth: 3, num_heads: 2}"
OVERRIDES = [SHAPE, "ppt.r=8", "ppt.pp_loc_list=[1,2]", "model.num_classes=8"]


def test_mindir_dynamic_batch(tmp_path):
    cfg = load_config("ppt", OVERRIDES)
    net, chw, dyn_ok = build_export_net(cfg, None)
    weights = convert_state_dict(random_state(pt_names(net), seed=7), target_shapes(net), "pt2ms")
    x = np.random.default_rng(8).standard_normal((4,) + chw).astype(np.float32)
    net.set_trace(True)
    ms.load_param_into_net(net, {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in weights.items()})
    var = np.sort(net(ms.Tensor(x))[1][1].asnumpy())
    cfg = load_config("ppt", OVERRIDES + [f"ppt.tau={float(np.sqrt(var[1] * var[2]))}"])
    net, chw, dyn_ok = build_export_net(cfg, weights)
    plain, _, _ = build_export_net(load_config("ppt", [SHAPE, "model.num_classes=8"]), state_numpy(net))
    assert chw == (3, 32, 32) and dyn_ok
    ref = net(ms.Tensor(x)).asnumpy()
    gap = np.abs(ref - plain(ms.Tensor(x)).asnumpy()).max()
    tol = 1e-4 * max(1.0, np.abs(ref).max())
    path = export_network(net, (4,) + chw, tmp_path / "ppt_dynamic", "MINDIR", dynamic_batch=True)
    run = load_exported(path)
    dyn_diff = max(np.abs(run(x[:b])[0] - net(ms.Tensor(x[:b])).asnumpy()).max() for b in (4, 3))
    print(f"[ppt] MINDIR (open batch, run at 4 and 3) vs network: {dyn_diff:.2e} (tol {tol:.1e}); "
          f"PPT vs unreduced logits gap {gap:.2e}")
    assert dyn_diff <= tol
    assert gap > 100 * tol
