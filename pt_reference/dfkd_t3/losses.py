"""DFKD-T3 losses (PyTorch reference); the twin of ``ms_models/dfkd_t3/losses.py`` (see there)."""
import torch


def specificity(teacher_logits, labels, conditioned=True):
    logp = torch.log_softmax(teacher_logits, dim=-1)
    if conditioned:
        return -logp.gather(1, labels.long().reshape(-1, 1)).reshape(-1)
    return -(logp.exp() * logp).sum(-1)


def diversity(teacher_logits):
    p = torch.softmax(teacher_logits, dim=-1)
    log_mean = torch.log(p.mean(0) + 1e-12)
    return (p * log_mean[None]).sum(-1)


def kl_rows(logits_p, logits_q, tau=1.0):
    logp = torch.log_softmax(logits_p / tau, dim=-1)
    logq = torch.log_softmax(logits_q / tau, dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)


def fidelity(gen_logits, init_logits):
    return kl_rows(gen_logits, init_logits).mean(-1)


def adversarial(teacher_logits, student_logits):
    return -kl_rows(teacher_logits, student_logits)


def kd_loss(teacher_logits, student_logits, tau):
    return (tau * tau) * kl_rows(teacher_logits, student_logits, tau).mean()


def sequence_log_prob(logits, ids):
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(2, ids.long()[:, :, None]).squeeze(-1).sum(-1)
