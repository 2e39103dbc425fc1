"""Gold-YOLO export: deploy form -> MINDIR (dynamic batch) and ONNX, run back and compared.

Weights are realistic rather than initial (zero prediction convs would make every output a
constant): the PyTorch twin gets random prediction convs and BottleRep alphas, then the BN
statistics of one train-mode pass on a calibration batch (three skimage photos and a uniform-noise
image, the kind of input scripts/export.py checks with), then BN gammas of 0.95; the generic
converter copies the weights to MindSpore and ``deploy.build_export_net`` reparameterises and
fuses. Why not the helper of parity_tests/test_gold_yolo_forward.py (all measured at 320):
- a random BN network is either ordered or chaotic. Its gammas of 0.3-0.7 shrink the signal until
  the detections hardly depend on the input (two photos differ by 3e-3 px at N), which would hide a
  batch mix-up in an exported graph. Gammas of 1 amplify rounding: torch fp32 is then up to 3x the
  tolerance away from float64 on a noise image (M, L). Gammas of 0.95 with prediction weights of
  std 0.5/sqrt(fan_in) keep torch fp32 within 0.12x the tolerance of float64 on every test input,
  for N/S/M/L, while different inputs move the boxes by 85-220 px;
- statistics from one photo leave other inputs badly conditioned (N: fp32 0.45 px from float64 on
  noise, 5x the tolerance).
Tolerance: the DESIGN forward level, max abs diff <= 1e-4 * max(1, max|ref|), the
reference being the MindSpore deploy network in PyNative. Every test prints its diffs and times.
"""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("DNNL_MAX_CPU_ISA", "AVX2")  # MindSpore 2.10's AVX-512 3x3 conv kernel is ~50x slower

import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from skimage import data, transform  # noqa: E402

import ms_models  # noqa: E402
import pt_reference  # noqa: E402
from common.config import load_config  # noqa: E402
from common.weights import write_weights  # noqa: E402
from ms_models.export import ExportError, export_network, load_exported  # noqa: E402
from ms_models.gold_yolo.common import avg_pool_to, max_pool5, resize_bilinear  # noqa: E402
from ms_models.gold_yolo.deploy import build_export_net  # noqa: E402
from ms_models.utils.weights import state_numpy  # noqa: E402
from pt_reference.utils.weights import calibrate_bn_statistics  # noqa: E402
from parity_tests.harness import copy_pt_to_ms  # noqa: E402
from parity_tests.test_gold_yolo_forward import _image  # noqa: E402

ms.set_device('CPU')
ms.runtime.launch_blocking()

REPO = Path(__file__).resolve().parents[1]
SIZE = 320


def _photo(img, size):
    """(1, 3, size, size) float32 in [0, 1] from an skimage RGB image."""
    img = transform.resize(img, (size, size), anti_aliasing=True).astype(np.float32)
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None])


def _prepare_weights(pt, x, seed):
    """Random prediction convs and alphas, BN statistics from one train-mode pass on the batch ``x``,
    then BN gammas of 0.95 (see the module docstring)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in pt.named_parameters():
            if name.endswith('alpha'):
                p.copy_(torch.from_numpy(rng.uniform(0.5, 1.0, p.shape).astype(np.float32)))
            elif '_preds' in name and name.endswith('weight'):
                p.copy_(torch.from_numpy(rng.standard_normal(p.shape).astype(np.float32)) * 0.5 / p.shape[1] ** 0.5)
            elif '_preds' in name and name.endswith('bias'):
                p.copy_(torch.from_numpy(rng.uniform(-1.0, 1.0, p.shape).astype(np.float32)))
    with torch.no_grad():
        for m in calibrate_bn_statistics(pt, x):
            m.weight.fill_(0.95)
    pt.eval()


def _calibration(size):
    """(4, 3, size, size): astronaut, chelsea, rocket and uniform noise in [0, 1)."""
    noise = np.random.default_rng(7).random((1, 3, size, size), dtype=np.float32)
    return np.concatenate([_image(size), _photo(data.chelsea(), size), _photo(data.rocket(), size), noise])


def _inputs(size):
    """(2, 3, size, size) test batch outside the calibration batch: coffee and uniform noise."""
    noise = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    return np.concatenate([_photo(data.coffee(), size), noise])


def _weights(variant, size):
    """MindSpore-named realistic weights of ``gold_yolo_<variant>`` (plain head, DFL, 80 classes)."""
    torch.manual_seed(0)
    pt = pt_reference.create_model(f'gold_yolo_{variant}', drop_path_rate=0.0)
    _prepare_weights(pt, _calibration(size), seed=1)
    net = ms_models.create_model(f'gold_yolo_{variant}', drop_path_rate=0.0)
    copy_pt_to_ms(pt, net)
    return state_numpy(net)


def _cfg(variant, size):
    return load_config('gold_yolo', [f'model.variant={variant}', 'model.num_classes=80', f'data.img_size={size}'])


def _outputs(net, x):
    out = net(ms.Tensor(x))
    return [o.asnumpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]


def _check(name, got, ref):
    """Same shapes and max abs diff within the forward tolerance; returns the diff."""
    assert [g.shape for g in got] == [r.shape for r in ref], name
    diff = max(float(np.abs(g - r).max()) for g, r in zip(got, ref))
    scale = max(float(np.abs(r).max()) for r in ref)
    print(f'{name}: max abs diff {diff:.3g} (max |ref| {scale:.3g}, tolerance {1e-4 * max(1.0, scale):.3g})')
    assert diff <= 1e-4 * max(1.0, scale), name
    return diff


@pytest.fixture(scope='module')
def n_deploy():
    start = time.time()
    net, chw, dyn_ok = build_export_net(_cfg('n', SIZE), _weights('n', SIZE))
    assert chw == (3, SIZE, SIZE) and dyn_ok
    x2 = _inputs(SIZE)
    ref = _outputs(net, x2)[0]
    # the weights make a non-trivial detector output: boxes and scores vary over anchors and images
    assert ref.shape == (2, 21 * (SIZE // 32) ** 2, 85)
    assert ref[..., 5:].std() > 0.1 and ref[..., :4].std() > 50.0
    assert np.abs(ref[0] - ref[1]).max() > 50.0
    print(f'N deploy net with realistic weights: {time.time() - start:.1f} s')
    return net, x2


def test_export_form_ops_match_torch():
    """The ONNX-exportable resize / pools against torch (independent implementation), up and down."""
    x = np.random.default_rng(0).standard_normal((2, 3, 10, 12)).astype(np.float32)
    xt = torch.from_numpy(x)
    for size in ((20, 24), (40, 48), (15, 19), (5, 7), (10, 12)):
        ref = torch.nn.functional.interpolate(xt, size=size, mode='bilinear', align_corners=False).numpy()
        got = resize_bilinear(ms.Tensor(x), size).asnumpy()
        assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-5, size
    ref = torch.nn.functional.max_pool2d(xt, 5, 1, 2).numpy()
    np.testing.assert_array_equal(max_pool5(ms.Tensor(x)).asnumpy(), ref)
    ref = torch.nn.functional.adaptive_avg_pool2d(xt, (5, 3)).numpy()
    assert np.abs(avg_pool_to(ms.Tensor(x), (5, 3), 'fixed_avgpool').asnumpy() - ref).max() < 1e-6


def test_n_mindir_dynamic_batch_runs_at_batch_1_and_2(n_deploy, tmp_path):
    net, x2 = n_deploy
    start = time.time()
    path = export_network(net, (1, 3, SIZE, SIZE), tmp_path / 'n', 'MINDIR', dynamic_batch=True)
    print(f'MINDIR export: {time.time() - start:.1f} s')
    assert path == tmp_path / 'n.mindir'
    run = load_exported(path)
    for b in (1, 2):
        _check(f'N MINDIR dynamic batch {b}', run(x2[:b]), _outputs(net, x2[:b]))


def test_n_onnx_matches_at_its_static_batch(n_deploy, tmp_path):
    net, x2 = n_deploy
    start = time.time()
    path = export_network(net, (1, 3, SIZE, SIZE), tmp_path / 'n.onnx', 'ONNX')
    print(f'ONNX export: {time.time() - start:.1f} s')
    assert path == tmp_path / 'n.onnx'
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, SIZE, SIZE]
    _check('N ONNX batch 1', load_exported(path)(x2[:1]), _outputs(net, x2[:1]))


def test_air_on_cpu_is_a_clear_error(n_deploy, tmp_path):
    with pytest.raises(ExportError, match=r"AIR export needs the Ascend backend \(current device: CPU\)"):
        export_network(n_deploy[0], (1, 3, SIZE, SIZE), tmp_path / 'n', 'AIR')
    assert not list(tmp_path.iterdir())


def test_cli_exports_n_to_onnx_and_checks_it(tmp_path):
    """scripts/export.py end to end with a weight file: exit code 0 and a check line within tolerance."""
    ckpt = tmp_path / 'n.ckpt'
    write_weights(ckpt, _weights('n', SIZE))
    start = time.time()
    proc = subprocess.run([sys.executable, str(REPO / 'scripts' / 'export.py'), '--config', 'gold_yolo',
                           '--ckpt', str(ckpt), '--format', 'ONNX', '--set', f'data.img_size={SIZE}',
                           '--out', str(tmp_path / 'cli' / 'n')],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    print(f'CLI: {time.time() - start:.1f} s')
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'wrote {tmp_path / "cli" / "n.onnx"} (ONNX, input images (1, 3, {SIZE}, {SIZE}) float32)' in proc.stdout
    m = re.search(r'check: n\.onnx vs MindSpore network, max abs diff (\S+) \(max \|output\| (\S+), batch 1\)',
                  proc.stdout)
    assert m, proc.stdout
    diff, scale = float(m.group(1)), float(m.group(2))
    assert scale > 100.0  # box coordinates in pixels: the check ran on a real output
    assert diff <= 1e-4 * scale


@pytest.mark.parametrize('variant', ['s', 'm', 'l'])
def test_s_m_l_export_to_onnx_and_dynamic_batch_mindir(variant, tmp_path):
    start = time.time()
    net, _, _ = build_export_net(_cfg(variant, SIZE), _weights(variant, SIZE))
    x2 = _inputs(SIZE)
    ref = _outputs(net, x2)[0]
    assert np.abs(ref[0] - ref[1]).max() > 50.0  # the detections depend on the input
    built = time.time()
    onnx_path = export_network(net, (1, 3, SIZE, SIZE), tmp_path / variant, 'ONNX')
    _check(f'{variant.upper()} ONNX batch 1', load_exported(onnx_path)(x2[:1]), _outputs(net, x2[:1]))
    onnx_done = time.time()
    mindir_path = export_network(net, (1, 3, SIZE, SIZE), tmp_path / variant, 'MINDIR', dynamic_batch=True)
    _check(f'{variant.upper()} MINDIR dynamic batch 2', load_exported(mindir_path)(x2), _outputs(net, x2))
    print(f'{variant.upper()}: weights + deploy {built - start:.1f} s, ONNX export + check {onnx_done - built:.1f} s, '
          f'MINDIR export + check {time.time() - onnx_done:.1f} s')
