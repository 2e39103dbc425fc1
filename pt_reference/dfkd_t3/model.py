"""DFKD-T3 system (PyTorch reference); the twin of ``ms_models/dfkd_t3/model.py`` (see there)."""
import numpy as np
import torch
from torch import nn

from . import losses

ESTIMATORS = ("gumbel_st", "reinforce")
CONDITIONING = ("label_prompt", "none")
FIDELITY = ("kl_to_init", "none")


class DFKDT3(nn.Module):
    def __init__(self, generator, generator_init, teacher, student, vocab_ids, cls_id, sep_id,
                 grad_estimator="gumbel_st", conditioning="label_prompt", fidelity="kl_to_init",
                 lambda_div=1.0, lambda_adv=0.0, beta_fid=0.1, tau_kd=2.0):
        super().__init__()
        for key, value, allowed in (("grad_estimator", grad_estimator, ESTIMATORS),
                                    ("conditioning", conditioning, CONDITIONING), ("fidelity", fidelity, FIDELITY)):
            if value not in allowed:
                raise ValueError(f"dfkd.{key}: {value!r} is not one of {allowed}")
        self.generator, self.generator_init = generator, generator_init
        self.teacher, self.student = teacher, student
        for p in list(teacher.parameters()) + list(generator_init.parameters()):
            p.requires_grad_(False)
        self.register_buffer("vocab_ids", torch.from_numpy(np.asarray(vocab_ids, np.int32)))
        self.register_buffer("generator_steps", torch.zeros(1))
        self.register_buffer("student_steps", torch.zeros(1))
        self.cls_id, self.sep_id = int(cls_id), int(sep_id)
        self.straight_through = grad_estimator == "gumbel_st"
        self.conditioned = conditioning == "label_prompt"
        self.use_fidelity = fidelity == "kl_to_init"
        self.lambda_div, self.lambda_adv = float(lambda_div), float(lambda_adv)
        self.beta_fid, self.tau_kd = float(beta_fid), float(tau_kd)

    def _wrap_embeds(self, onehots, clf):
        table = clf.bert.word_embedding_table()
        body = torch.matmul(onehots, table[self.vocab_ids.long()])
        b, h = onehots.shape[0], table.shape[1]
        cls = table[self.cls_id][None, None].expand(b, 1, h)
        sep = table[self.sep_id][None, None].expand(b, 1, h)
        return torch.cat((cls, body, sep), 1)

    def text_ids(self, gen_ids):
        body = self.vocab_ids.long()[gen_ids.long()]
        b = gen_ids.shape[0]
        ids = torch.cat((torch.full((b, 1), self.cls_id), body, torch.full((b, 1), self.sep_id)), 1)
        return ids, torch.ones_like(ids, dtype=torch.int32)

    def init_logits(self, prefix_ids, prefix_mask, gen_ids):
        p, length = prefix_ids.shape[1], gen_ids.shape[1]
        ids = torch.cat((prefix_ids.long(), gen_ids.long()), 1)
        mask = torch.cat((prefix_mask.float(), torch.ones(gen_ids.shape)), 1)
        with torch.no_grad():
            return self.generator_init(ids, mask)[:, p - 1:p - 1 + length] + self.generator_init.gen_logit_mask

    def generator_objective(self, prefix_ids, prefix_mask, labels, gumbel, tau):
        onehots, logits, ids = self.generator.generate(prefix_ids, prefix_mask, gumbel, tau, self.straight_through)
        ones = torch.ones(ids.shape[0], ids.shape[1] + 2, dtype=torch.int32)
        if self.straight_through:
            t_logits = self.teacher.forward_embeds(self._wrap_embeds(onehots, self.teacher), ones)
        else:
            text, text_mask = self.text_ids(ids)
            t_logits = self.teacher(text, text_mask)
        spec = losses.specificity(t_logits, labels, self.conditioned)
        div = losses.diversity(t_logits)
        per_sample = spec + self.lambda_div * div
        adv = torch.zeros_like(spec)
        if self.lambda_adv > 0:
            if self.straight_through:
                s_logits = self.student.forward_embeds(self._wrap_embeds(onehots, self.student), ones)
            else:
                s_logits = self.student(text, text_mask)
            adv = losses.adversarial(t_logits, s_logits)
            per_sample = per_sample + self.lambda_adv * adv
        fid = torch.zeros_like(spec)
        if self.use_fidelity:
            fid = losses.fidelity(logits, self.init_logits(prefix_ids, prefix_mask, ids))
        objective = per_sample.mean() + self.beta_fid * fid.mean()
        if self.straight_through:
            surrogate = objective
        else:
            reward = -per_sample.detach()
            advantage = reward - reward.mean()
            surrogate = -(advantage * losses.sequence_log_prob(logits, ids)).mean() + self.beta_fid * fid.mean()
        return surrogate, (objective, spec.mean(), div.mean(), fid.mean(), adv.mean())

    def generate_ids(self, prefix_ids, prefix_mask, gumbel):
        with torch.no_grad():
            return self.generator.generate(prefix_ids, prefix_mask, gumbel, 1.0, False)[2]

    def student_objective(self, prefix_ids, prefix_mask, gumbel):
        text, text_mask = self.text_ids(self.generate_ids(prefix_ids, prefix_mask, gumbel))
        with torch.no_grad():
            t_logits = self.teacher(text, text_mask)
        return losses.kd_loss(t_logits, self.student(text, text_mask), self.tau_kd)

    def student_kd_on_ids(self, text, text_mask):
        with torch.no_grad():
            t_logits = self.teacher(text, text_mask)
        return losses.kd_loss(t_logits, self.student(text, text_mask), self.tau_kd)
