"""Training losses of MMP-RNN, as the original's `train/loss.py` computes them.

Frames are `[..., H, W, 3]` in [0, 1] units. The original works on frames shifted by -0.5
(its `centralize`); that changes the Charbonnier term in nothing, but the gradient term
pads with zeros, so its border values depend on the shift: it is computed on the shifted
frames, as the original.

- Charbonnier (`L1_Charbonnier_loss_color`): mean over pixels of
  sqrt(mean over RGB of (O - I)^2 + eps^2), eps = 1e-3. The paper's Eq. 6 writes a sum over
  RGB and eps^2 outside the root; the code takes the mean and puts eps^2 inside.
- Gradient (`L1GradientLoss`): L1 between per-channel gradient magnitudes
  sqrt(dv^2 + dh^2 + 1e-6), central differences, zero padding 2 (so `[H+2, W+2]` maps). The
  paper's Eq. 7 says a squared difference of gradients; the code is L1 of magnitudes.
- Motion magnitude (Eq. 5): mean of the frozen MMP-Net's prior of the output. The released
  code never uses it (its loss string is `1*L1_Charbonnier_loss_color|0.5*L1GradientLoss`).
"""
from collections.abc import Callable

import jax
import jax.numpy as jnp

CHARBONNIER_EPS = 1e-3
WEIGHTS = {'charbonnier': 1.0, 'gradient': 0.5, 'motion_magnitude': 1.0}  # paper Eq. 8


def charbonnier(output: jax.Array, target: jax.Array, eps: float = CHARBONNIER_EPS) -> jax.Array:
    return jnp.mean(jnp.sqrt(jnp.mean(jnp.square(output - target), axis=-1) + eps * eps))


def gradient_magnitude(frames: jax.Array) -> jax.Array:
    """`[N, H, W, C]` -> `[N, H+2, W+2, C]` per-channel gradient magnitude (the original's
    3x3 central-difference kernels with padding 2)."""
    padded = jnp.pad(frames, ((0, 0), (2, 2), (2, 2), (0, 0)))
    vertical = padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]
    horizontal = padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]
    return jnp.sqrt(jnp.square(vertical) + jnp.square(horizontal) + 1e-6)


def gradient_l1(output: jax.Array, target: jax.Array, centre: float = 0.5) -> jax.Array:
    """L1 of gradient magnitudes of `frames - centre` (the original's normalised range)."""
    flat = lambda x: x.reshape((-1,) + x.shape[-3:]) - centre
    return jnp.mean(jnp.abs(gradient_magnitude(flat(output)) - gradient_magnitude(flat(target))))


def motion_magnitude(prior_of: Callable[[jax.Array], jax.Array], output: jax.Array) -> jax.Array:
    """Mean prior of the output; `prior_of` maps `[N, H, W, 3]` frames in [0, 1] to priors."""
    return jnp.mean(prior_of(output.reshape((-1,) + output.shape[-3:])))


def total_loss(output: jax.Array, target: jax.Array,
               prior_of: Callable[[jax.Array], jax.Array] | None = None,
               weights: dict[str, float] = WEIGHTS) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted sum (paper Eq. 8) of the terms whose weight is non-zero; a term's weight 0
    switches it off (Table 4). Returns (total, {term: unweighted value})."""
    terms = {}
    if weights.get('charbonnier', 0):
        terms['charbonnier'] = charbonnier(output, target)
    if weights.get('gradient', 0):
        terms['gradient'] = gradient_l1(output, target)
    if weights.get('motion_magnitude', 0):
        if prior_of is None:
            raise ValueError('the motion magnitude loss needs MMP-Net (prior_of)')
        terms['motion_magnitude'] = motion_magnitude(prior_of, output)
    return sum(weights[name] * value for name, value in terms.items()), terms
