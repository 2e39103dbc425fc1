"""IFT ghost-free HDR fusion (PyTorch reference): registers ``ift`` and ``hdr_transformer``."""
from .fgps import FGPS
from .loss import mu_l1_loss, mu_law
from .model import IFT
from .scf import SelfCrossFusion

__all__ = ["FGPS", "IFT", "SelfCrossFusion", "mu_l1_loss", "mu_law"]
