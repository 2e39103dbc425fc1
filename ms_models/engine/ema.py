"""Exponential moving average of all floating state of a model (parameters and BN statistics).

``ema = d * ema + (1 - d) * model`` with ``d`` given per update (see
``common.schedules.ema_decay``: YOLOv6's ``decay * (1 - exp(-updates / tau))`` or a constant).
"""
import contextlib

from mindspore import Parameter, ParameterTuple, Tensor, nn, ops
import mindspore as ms

_ema = ops.MultitypeFuncGraph("ema_update")
_FLOAT_TYPES = (ms.float16, ms.float32, ms.float64, ms.bfloat16)


@_ema.register("Tensor", "Tensor", "Tensor")
def _ema_update(decay, shadow, src):
    return ops.assign(shadow, shadow * decay.astype(shadow.dtype) + src * (1.0 - decay).astype(shadow.dtype))


class EMA(nn.Cell):
    """Shadow copies of every floating Parameter of ``model`` (trainable or not).

    ``ema(decay)`` (decay: float32 scalar tensor) updates all shadows; ``swapped()`` is a
    context manager that puts the shadow values into the model and restores the live ones after.
    """

    def __init__(self, model):
        super().__init__(auto_prefix=False)
        src = [p for _, p in model.parameters_and_names() if p.dtype in _FLOAT_TYPES]
        self.src = ParameterTuple(src)
        self.shadow = ParameterTuple([Parameter(Tensor(p.asnumpy()), name=f"ema.{p.name}", requires_grad=False)
                                      for p in src])
        self.hyper_map = ops.HyperMap()

    def construct(self, decay):
        return self.hyper_map(ops.partial(_ema, decay), self.shadow, self.src)

    def names(self):
        """Model parameter names, in shadow order."""
        return [p.name for p in self.src]

    @contextlib.contextmanager
    def swapped(self):
        """Temporarily load the EMA values into the model's parameters."""
        live = [p.asnumpy().copy() for p in self.src]
        for p, s in zip(self.src, self.shadow):
            ops.assign(p, s.value())
        try:
            yield
        finally:
            for p, v in zip(self.src, live):
                ops.assign(p, Tensor(v))

