"""Config -> CFAM constructor arguments, loss weights and parameter-group rules, shared by the
MindSpore and PyTorch tasks (framework-free)."""

LOSS_ORDER = ("sdm", "itc", "id", "mlm", "gran", "match")


def loss_weights(cfg):
    """``{name: weight}`` of the enabled losses (weight > 0), in ``LOSS_ORDER``."""
    w = {n: float(cfg.loss[n]) for n in LOSS_ORDER if float(cfg.loss[n]) > 0}
    if not w:
        raise ValueError(f"all loss weights are 0 (loss.{{{', '.join(LOSS_ORDER)}}}); enable at least one")
    return w


def model_kwargs(cfg, num_classes):
    """CFAM(...) keyword arguments from ``cfg.model``, ``cfg.data.img_size`` and the loss weights."""
    m = cfg.model
    clip = dict(embed_dim=m.embed_dim, image_resolution=tuple(cfg.data.img_size), vision_layers=m.vision_layers,
                vision_width=m.vision_width, vision_patch_size=m.vision_patch_size, vision_heads=m.vision_heads,
                context_length=m.text_length, vocab_size=m.vocab_size, transformer_width=m.text_width,
                transformer_heads=m.text_heads, transformer_layers=m.text_layers)
    return dict(num_classes=num_classes, clip_kwargs=clip, temperature=m.temperature,
                losses=tuple(loss_weights(cfg)), mlm_depth=m.mlm_depth, mlm_heads=m.mlm_heads,
                num_queries=m.num_queries, decoder_layers=m.decoder_layers, decoder_heads=m.decoder_heads,
                granularity_loss=m.granularity_loss, granularity_pool=m.granularity_pool,
                decoder_text_mask=m.decoder_text_mask, match_heads=m.match_heads)


def is_pretrained(name):
    """Parameters of the CLIP base (``base_model.*``) as opposed to the randomly initialised heads."""
    return name.startswith("base_model.")


def is_bias(name):
    """IRRA's rule: no weight decay on biases (torch 'bias' in the name; MindSpore LayerNorm 'beta')."""
    leaf = name.rsplit(".", 1)[-1]
    return "bias" in leaf or leaf == "beta"


def group_of(name):
    """One of ``base``, ``base_bias``, ``new``, ``new_bias``."""
    return ("base" if is_pretrained(name) else "new") + ("_bias" if is_bias(name) else "")


def make_groups(named_params, cfg):
    """IRRA-style groups from ``[(name, param)]``: base lr x1, biases x ``optim.bias_lr_factor`` with no
    decay, new modules (classifier, MLM, decoder, matching head) x ``optim.lr_factor``."""
    o = cfg.optim
    spec = {"base": (1.0, float(o.weight_decay)), "base_bias": (float(o.bias_lr_factor), 0.0),
            "new": (float(o.lr_factor), float(o.weight_decay)), "new_bias": (float(o.lr_factor), 0.0)}
    groups = {k: [] for k in spec}
    for name, p in named_params:
        groups[group_of(name)].append(p)
    return [{"name": k, "params": v, "weight_decay": spec[k][1], "lr_scale": spec[k][0]}
            for k, v in groups.items() if v]
