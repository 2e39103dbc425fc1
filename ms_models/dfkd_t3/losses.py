"""DFKD-T3 losses (MindSpore); spec §3. Every function returns per-sample values (B,) unless noted,
so REINFORCE can use them as rewards; the batch loss is their mean.

Generator:
  specificity  CE(T(x~), y)                    (conditioning: label_prompt)
               H(T(x~))                        (conditioning: none)
  diversity    sum_c p_ic log pbar_c           mean over i = -H(pbar): class balance of the batch
  fidelity     mean_t KL(G_theta(.|ctx_t) || G_0(.|ctx_t))    (fidelity: kl_to_init)
  adversarial  -KL(T(x~) || S(x~))             (DFAD-style, student-hard samples)
Student:
  KD           tau^2 KL(softmax(z_T / tau) || softmax(z_S / tau))
"""
import mindspore as ms
from mindspore import ops


def specificity(teacher_logits, labels, conditioned=True):
    """(B,): cross-entropy to the prompted label, or the teacher's predictive entropy."""
    logp = ops.log_softmax(teacher_logits, axis=-1)
    if conditioned:
        return -ops.gather_elements(logp, 1, labels.astype(ms.int32).reshape(-1, 1)).reshape(-1)
    return -(ops.exp(logp) * logp).sum(axis=-1)


def diversity(teacher_logits):
    """(B,) ``sum_c p_ic log pbar_c``; its batch mean is ``-H(pbar)`` (minimised: balanced classes)."""
    p = ops.softmax(teacher_logits, axis=-1)
    log_mean = ops.log(p.mean(axis=0) + 1e-12)
    return (p * log_mean[None]).sum(axis=-1)


def kl_rows(logits_p, logits_q, tau=1.0):
    """``KL(softmax(p / tau) || softmax(q / tau))`` over the last axis."""
    logp = ops.log_softmax(logits_p / tau, axis=-1)
    logq = ops.log_softmax(logits_q / tau, axis=-1)
    return (ops.exp(logp) * (logp - logq)).sum(axis=-1)


def fidelity(gen_logits, init_logits):
    """(B,) mean over generated positions of ``KL(G_theta || G_0)``; logits (B, L, N)."""
    return kl_rows(gen_logits, init_logits).mean(axis=-1)


def adversarial(teacher_logits, student_logits):
    """(B,) ``-KL(T || S)`` at temperature 1."""
    return -kl_rows(teacher_logits, student_logits)


def kd_loss(teacher_logits, student_logits, tau):
    """Scalar ``tau^2 * mean_i KL(softmax(z_T / tau) || softmax(z_S / tau))``."""
    return (tau * tau) * kl_rows(teacher_logits, student_logits, tau).mean()


def sequence_log_prob(logits, ids):
    """(B,) ``sum_t log softmax(logits_t)[ids_t]``; logits (B, L, N), ids (B, L)."""
    logp = ops.log_softmax(logits, axis=-1)
    return ops.gather_elements(logp, 2, ids.astype(ms.int32)[:, :, None]).squeeze(-1).sum(axis=-1)
