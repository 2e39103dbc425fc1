"""Gold-YOLO parameter layout against the official state_dict listings (spec §4, §12.1).

For every listing in ``gold_yolo_state_dict/`` (the shared folder beside the repository):
  - the PyTorch twin built with the matching layout has exactly the listed keys, shapes and dtypes;
  - the MindSpore model's ``parameters_dict`` has exactly the listed names after the BN renames
    (``naming.torch_name_to_ms``, num_batches_tracked dropped), with the listed shapes;
  - the twin's state, converted by ``naming.torch_state_to_ms``, loads with
    ``ms.load_param_into_net(..., strict_load=True)`` returning ([], []), the generic
    ``common.weights.convert_state_dict`` produces the same names, and every value arrives intact.
"""
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import torch

import ms_models
import pt_reference
from common.weights import convert_state_dict
from ms_models.gold_yolo.naming import torch_name_to_ms, torch_state_to_ms

LISTINGS = Path(__file__).resolve().parents[2] / 'shared' / 'gold_yolo_state_dict'
LAYOUTS = {  # listing -> (variant, builder kwargs)
    'n_plain': ('n', dict(head='plain', use_dfl=False, reg_max=0)),
    'n_dfl': ('n', dict(head='plain')),
    'n_distill_ns': ('n', dict(head='distill_ns')),
    'n_fuseab_dfl': ('n', dict(head='fuse_ab')),
    's_plain': ('s', dict(head='plain')),
    's_distill_ns': ('s', dict(head='distill_ns')),
    's_fuseab': ('s', dict(head='fuse_ab')),
    'm_plain': ('m', dict(head='plain')),
    'm_fuseab': ('m', dict(head='fuse_ab')),
    'l_plain': ('l', dict(head='plain')),
    'l_fuseab': ('l', dict(head='fuse_ab')),
}


def _read_listing(name):
    """{key: (shape tuple, dtype str)} from one tab-separated listing."""
    rows = {}
    for line in (LISTINGS / f'{name}.tsv').read_text().splitlines():
        key, shape, dtype = line.split('\t')
        dims = shape.strip('()').replace(' ', '')
        rows[key] = (tuple(int(d) for d in dims.split(',') if d), dtype)
    return rows


def _diff(got, expected):
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = sorted((k, got[k], expected[k]) for k in set(got) & set(expected) if got[k] != expected[k])
    return missing, unexpected, mismatched


def test_every_listing_has_a_layout():
    assert LISTINGS.is_dir(), f"missing {LISTINGS} (the shared state_dict listings beside the repository)"
    assert sorted(p.stem for p in LISTINGS.glob('*.tsv')) == sorted(LAYOUTS)


@pytest.mark.parametrize('listing', sorted(LAYOUTS))
def test_layout(listing):
    variant, kwargs = LAYOUTS[listing]
    expected = _read_listing(listing)

    torch.manual_seed(0)
    pt = pt_reference.create_model(f'gold_yolo_{variant}', **kwargs)
    state = pt.state_dict()
    got_pt = {k: (tuple(v.shape), str(v.dtype).replace('torch.', '')) for k, v in state.items()}
    assert _diff(got_pt, expected) == ([], [], []), f"{listing}: PyTorch twin differs (missing, unexpected, mismatched)"
    assert list(state) == list(expected), f"{listing}: PyTorch key order differs from the listing"

    net = ms_models.create_model(f'gold_yolo_{variant}', **kwargs)
    params = net.parameters_dict()
    expected_ms = {torch_name_to_ms(k): shape for k, (shape, _) in expected.items() if torch_name_to_ms(k)}
    assert len(expected_ms) == sum(not k.endswith('num_batches_tracked') for k in expected)
    got_ms = {k: tuple(p.shape) for k, p in params.items()}
    assert _diff(got_ms, expected_ms) == ([], [], []), f"{listing}: MindSpore names/shapes differ"
    assert not params['detect.proj'].requires_grad and not params['detect.proj_conv.weight'].requires_grad

    numpy_state = {k: v.numpy() for k, v in state.items()}
    converted = torch_state_to_ms(numpy_state)
    generic = convert_state_dict(numpy_state, got_ms, 'pt2ms')
    assert sorted(generic) == sorted(converted), f"{listing}: naming.py and common.weights disagree"
    to_load = {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in converted.items()}
    assert ms.load_param_into_net(net, to_load, strict_load=True) == ([], [])
    loaded = net.parameters_dict()
    for k, v in converted.items():
        np.testing.assert_array_equal(loaded[k].asnumpy(), v, err_msg=f"{listing}: {k} not copied intact")
