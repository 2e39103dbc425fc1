"""RPG pruning schedule (framework-free; the twin of ``pt_reference/rpg/schedule.py``).

Step convention: ``s`` is the number of optimizer iterations already run (0-based index of the
iteration about to run); the official ``RigLScheduler.__call__`` increments its counter after the
backward, so a mask update happens after iteration ``s`` when ``(s + 1) % delta == 0`` and
``s + 1 < T_end``.

- Density at update number ``t`` (0-based): ``D ** (t / U)``, ``U = iterative_T_end // delta``,
  and ``D`` from update ``U`` on (official ``math_policies.exponential``).
- RigL drop fraction at step ``step``: ``alpha / 2 * (1 + cos(pi * step / T_end))``.
- Iteration ``s`` accumulates dense gradients (and adds the rank loss) when ``s < T_end`` and
  ``delta - s % delta <= grad_accumulation_n`` (official ``check_if_backward_hook_should_accumulate_grad``).
"""
import math
from dataclasses import dataclass


def exponential_density(update_index, final_density, update_times):
    """Density after mask update ``update_index`` (0-based): ``D ** (t / U)`` for ``t < U``, else ``D``."""
    if update_times <= 0:
        return float(final_density)
    factor = math.pow(final_density, 1.0 / update_times)
    return math.pow(factor, update_index) if update_index < update_times else float(final_density)


def drop_fraction(step, alpha, t_end):
    """Cosine-annealed RigL drop fraction at (1-based) step ``step``."""
    return alpha / 2.0 * (1.0 + math.cos(step * math.pi / t_end))


@dataclass(frozen=True)
class StepKind:
    """What iteration ``s`` does: add the rank loss, accumulate dense gradients, take the optimizer step."""
    rank: bool
    accumulate: bool
    update: bool


@dataclass
class PruneSchedule:
    """Schedule of one run.

    Args:
        total_steps: optimizer iterations of the whole run (epochs x steps per epoch).
        sparsity: target global sparsity ``s`` (final density ``D = 1 - s``).
        delta: iterations between mask updates.
        alpha: initial RigL drop fraction (0 disables drop/grow: gradual magnitude pruning only).
        t_end_percent: RigL stops at ``int(t_end_percent * total_steps)``.
        iterative_t_end_percent: the density reaches ``D`` at ``int(. * total_steps)``.
        lamb: rank-loss weight (0: no rank loss).
        grad_accumulation_n: iterations whose dense gradients are averaged for regrowth.
        rank_loss_every_step: add the rank loss on every iteration (not only the accumulating ones).
    """
    total_steps: int
    sparsity: float
    delta: int = 100
    alpha: float = 0.3
    t_end_percent: float = 0.901
    iterative_t_end_percent: float = 0.9
    lamb: float = 0.0
    grad_accumulation_n: int = 1
    rank_loss_every_step: bool = False

    def __post_init__(self):
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"rpg.sparsity must be in [0, 1), got {self.sparsity}")
        if self.delta < 1:
            raise ValueError(f"rpg.delta must be >= 1, got {self.delta}")
        if not 1 <= self.grad_accumulation_n <= self.delta:
            raise ValueError(f"rpg.grad_accumulation_n must be in [1, rpg.delta={self.delta}], "
                             f"got {self.grad_accumulation_n}")

    @property
    def final_density(self):
        return 1.0 - self.sparsity

    @property
    def t_end(self):
        return int(self.t_end_percent * self.total_steps)

    @property
    def iterative_t_end(self):
        return int(self.iterative_t_end_percent * self.total_steps)

    @property
    def update_times(self):
        """``U``: number of updates over which the density decays to ``D``."""
        return self.iterative_t_end // self.delta

    def final_density_step(self):
        """Step of the update that first reaches D (update index U), or None when it would fall at or
        after T_end (then the run ends above the target sparsity: raise t_end_percent or lower delta)."""
        step = (self.update_times + 1) * self.delta
        return step if step < self.t_end else None

    def is_update(self, step):
        """True when the mask update runs after the iteration that brings the count to ``step``."""
        return step % self.delta == 0 and step < self.t_end

    def update_index(self, step):
        """0-based index of the update at ``step`` (the official ``rigl_steps`` before it)."""
        return step // self.delta - 1

    def density(self, step):
        """Target density of the update at ``step``."""
        return exponential_density(self.update_index(step), self.final_density, self.update_times)

    def global_pruning(self, step):
        """Global magnitude re-pruning runs until the update that first reaches ``D`` (inclusive)."""
        return self.update_index(step) <= self.update_times

    def drop_fraction(self, step):
        return drop_fraction(step, self.alpha, self.t_end)

    def accumulates(self, s):
        return s < self.t_end and self.delta - (s % self.delta) <= self.grad_accumulation_n

    def kind(self, s):
        """``StepKind`` of iteration ``s`` (0-based). The optimizer step is skipped on the iteration
        just before a mask update when ``alpha != 0`` (official ``pruner()`` returning False)."""
        acc = self.accumulates(s)
        rank = self.lamb != 0.0 and (acc or self.rank_loss_every_step)
        update = not (self.is_update(s + 1) and self.alpha != 0.0)
        return StepKind(rank=rank, accumulate=acc, update=update)


def schedule_from_config(cfg, total_steps):
    """``PruneSchedule`` from the ``rpg`` section of a config."""
    r = cfg.rpg
    return PruneSchedule(total_steps=int(total_steps), sparsity=float(r.sparsity), delta=int(r.delta),
                         alpha=float(r.alpha), t_end_percent=float(r.t_end_percent),
                         iterative_t_end_percent=float(r.iterative_t_end_percent), lamb=float(r.lamb),
                         grad_accumulation_n=int(r.grad_accumulation_n),
                         rank_loss_every_step=bool(r.rank_loss_every_step))
