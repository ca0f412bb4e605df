"""The ACT network (Zhao et al. 2023) for state inputs: CVAE encoder, transformer encoder, decoder.

Everything here works in *normalised* coordinates (``processor.Normalizer``): an
observation o (B, OBS_DIM) and an action chunk a (B, k, 7) in model coordinates
(``processor.chunk_to_model``: joints relative to the observed q_t), both zero mean and
unit std per feature over the training set. Frames and units of the raw features: ``processor``.

Notation: B batch, k chunk size, d = ``d_model``, L = ``latent_dim``.

CVAE encoder  q_phi(z | o, a)  (training only)
----------------------------------------------
Tokens ``[CLS, W_o o, W_a a_1, ..., W_a a_k]`` (B, k + 2, d) plus learned position
embeddings go through a transformer encoder; the output at CLS is mapped to
``(mu, log sigma^2)`` (B, L) each, and z is drawn with the reparameterisation

    z = mu + sigma * eps,   eps ~ N(0, I).

At inference there is no action chunk: z = 0, the mean of the prior p(z) = N(0, I).

Policy  pi_theta(a | o, z)
--------------------------
Encoder tokens (B, 4, d), each a linear projection of one input group
(``processor.TOKEN_GROUPS``) plus a learned token embedding::

    [ W_z z,  W_p [q (6), g, p_tcp (3), v (7), w],  W_t [p_t, p_t - p_tcp],  W_b [p_b,xy, p_b,xy - p_tcp,xy] ]

through ``n_encoder_layers`` transformer encoder layers (pre-norm self-attention + MLP)
-> memory M (B, 4, d). The decoder has k learned queries Q (k, d), one per future step;
``n_decoder_layers`` (1 is enough, as LeRobot found) of self-attention over the queries,
cross-attention to M and an MLP give (B, k, d), and a linear head gives the normalised
chunk a_hat (B, k, 7). Row i is the target for control step t + i (row 0 is the next one).

Loss
----
    L = mean_{b, i, j} |a_hat_bij - a_bij|  +  beta * mean_b KL_b,
    KL_b = KL(N(mu_b, diag sigma_b^2) || N(0, I)) = -1/2 sum_l (1 + log sigma_bl^2 - mu_bl^2 - sigma_bl^2)

with beta = ``kl_weight`` (10 in ACT). KL_b = 0 exactly when mu_b = 0 and sigma_b = 1.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fdl_robot.policy.act.config import ACTConfig
from fdl_robot.policy.act.processor import OBS_DIM, TOKEN_GROUPS

__all__ = ["ACTModel", "EMBEDDING_PARAMETERS", "kl_divergence", "act_loss"]

#: The learned embeddings and queries: initialised N(0, 0.02^2), exempt from weight decay.
EMBEDDING_PARAMETERS = ("token_embed", "queries", "vae_cls", "vae_pos")


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per sample: (B, L) -> (B,)."""
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp(), dim=-1)


def act_loss(a_hat: Tensor, a: Tensor, mu: Tensor | None, logvar: Tensor | None,
             kl_weight: float) -> dict[str, Tensor]:
    """``{'loss', 'l1', 'kl'}``: L1 over (B, k, 7) plus kl_weight * mean KL (0 without a posterior)."""
    l1 = F.l1_loss(a_hat, a)
    kl = kl_divergence(mu, logvar).mean() if mu is not None else a_hat.new_zeros(())
    return {"loss": l1 + kl_weight * kl, "l1": l1, "kl": kl}


def _encoder(cfg: ACTConfig, n_layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.dim_feedforward, cfg.dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(cfg.d_model),
                                 enable_nested_tensor=False)


class ACTModel(nn.Module):
    """ACT for state inputs; see the module docstring for the equations.

    ``with_vae_encoder=False`` builds the inference-only network (the CVAE encoder is
    used in training only; the shipped weights leave it out).
    """

    def __init__(self, cfg: ACTConfig, with_vae_encoder: bool = True):
        super().__init__()
        if cfg.obs_dim != OBS_DIM or cfg.action_dim != 7:
            raise ValueError(f"this ACT takes {OBS_DIM} observation and 7 action features")
        self.cfg = cfg
        d = cfg.d_model
        # --- policy encoder inputs
        self.latent_proj = nn.Linear(cfg.latent_dim, d)
        self.group_proj = nn.ModuleDict(
            {name: nn.Linear(s.stop - s.start, d) for name, s in TOKEN_GROUPS})
        self.token_embed = nn.Parameter(torch.zeros(1 + len(TOKEN_GROUPS), d))
        self.encoder = _encoder(cfg, cfg.n_encoder_layers)
        # --- decoder
        self.queries = nn.Parameter(torch.zeros(cfg.chunk_size, d))
        dec_layer = nn.TransformerDecoderLayer(d, cfg.n_heads, cfg.dim_feedforward, cfg.dropout,
                                               activation="gelu", batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(dec_layer, cfg.n_decoder_layers, norm=nn.LayerNorm(d))
        self.action_head = nn.Linear(d, cfg.action_dim)
        # --- CVAE encoder (training only)
        self.vae = None
        if with_vae_encoder:
            self.vae = nn.ModuleDict({
                "obs_proj": nn.Linear(cfg.obs_dim, d),
                "action_proj": nn.Linear(cfg.action_dim, d),
                "encoder": _encoder(cfg, cfg.n_vae_encoder_layers),
                "latent_head": nn.Linear(d, 2 * cfg.latent_dim),
            })
            self.vae_cls = nn.Parameter(torch.zeros(1, d))
            self.vae_pos = nn.Parameter(torch.zeros(cfg.chunk_size + 2, d))
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for name, p in self.named_parameters():
            if name in EMBEDDING_PARAMETERS:
                nn.init.normal_(p, std=0.02)

    # --- parts -----------------------------------------------------------------------

    def encode_posterior(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """q_phi(z | o, a): obs (B, OBS_DIM), actions (B, k, 7) -> mu, logvar (B, L)."""
        if self.vae is None:
            raise RuntimeError("this model was built without its CVAE encoder (inference only)")
        B = obs.shape[0]
        tokens = torch.cat([self.vae_cls.expand(B, 1, -1), self.vae["obs_proj"](obs)[:, None],
                            self.vae["action_proj"](actions)], dim=1) + self.vae_pos
        h = self.vae["encoder"](tokens)[:, 0]
        mu, logvar = self.vae["latent_head"](h).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, obs: Tensor, z: Tensor) -> Tensor:
        """pi_theta: obs (B, OBS_DIM), z (B, L) -> normalised chunk (B, k, 7)."""
        tokens = [self.latent_proj(z)] + [self.group_proj[name](obs[:, s]) for name, s in TOKEN_GROUPS]
        memory = self.encoder(torch.stack(tokens, dim=1) + self.token_embed)
        queries = self.queries.expand(obs.shape[0], -1, -1)
        return self.action_head(self.decoder(queries, memory))

    # --- whole model -----------------------------------------------------------------

    def forward(self, obs: Tensor, actions: Tensor | None = None
                ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Training (``actions`` given): z ~ q_phi(z | o, a); else z = 0.

        Returns ``(a_hat (B, k, 7), mu, logvar)``, mu/logvar None without actions.
        """
        if actions is not None:
            mu, logvar = self.encode_posterior(obs, actions)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
            return self.decode(obs, z), mu, logvar
        z = obs.new_zeros(obs.shape[0], self.cfg.latent_dim)
        return self.decode(obs, z), None, None

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Optimiser parameter groups: ``[weight matrices with weight_decay, the rest with 0]``.

        Decayed: every parameter with ndim >= 2 except the ``EMBEDDING_PARAMETERS``; not
        decayed: biases, LayerNorm gains and the embeddings. Each group lists its parameters
        in ``named_parameters`` order.
        """
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            (decay if p.ndim >= 2 and name not in EMBEDDING_PARAMETERS else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def inference_state_dict(self) -> dict[str, Tensor]:
        """The weights :class:`ACTModel` (cfg, with_vae_encoder=False) needs."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("vae")}
