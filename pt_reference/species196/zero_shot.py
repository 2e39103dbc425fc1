"""PyTorch twin of ``ms_models.species196.zero_shot.TinyImageText`` (same names and numerics)."""
import torch
from torch import nn

from pt_reference.registry import register_model


class TinyImageText(nn.Module):
    def __init__(self, embed_dim=32, width=16, vocab_size=259):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=True)
        self.image_proj = nn.Linear(width, embed_dim)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.text_proj = nn.Linear(width, embed_dim)

    def encode_image(self, images):
        return self.image_proj(torch.relu(self.conv(images)).mean(dim=(2, 3)))

    def encode_text(self, tokens):
        emb = self.token_embedding(tokens.long())
        valid = (tokens > 0).to(emb.dtype).unsqueeze(-1)
        return self.text_proj((emb * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1.0))


@register_model
def species196_tiny_clip(embed_dim=32, width=16, vocab_size=259):
    """Tiny image-text model for testing the zero-shot track (not a CLIP replica)."""
    return TinyImageText(embed_dim, width, vocab_size)
