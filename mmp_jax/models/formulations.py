"""The one setting of how `layers` computes on each platform, and the switch that applies it.

Every formulation computes the same function of the same parameters (to float rounding); they
differ in speed and memory on the platform they are for. The architecture modules never see
them: only `layers` reads this module, through `current()` and `platform_branch`.

- CPU: Winograd's 3x3 (`winograd.winograd_conv3x3`, from `cpu_winograd_min_channels` input
  channels) and the 1x1 of parts by part, on maps of at least `cpu_min_pixels` pixels, so that
  the forward pass never builds a dense block's concatenations.
- GPU (CUDA, ROCm): XLA's convolution (cuDNN), optionally with channels zero-padded to a
  multiple of `gpu_channel_multiple` (`channel_padding.channel_padded_conv`), the counts tensor
  cores take.
- TPU and anything else: XLA's convolution of the concatenated parts.

The platform is the one a program is lowered for (`jax.lax.platform_dependent`: the compiled
program holds only its own branch), unless `platform` names one, which tests and benchmarks use
to compute another platform's formulation here. The setting is a JAX user context
(`jax.make_user_context`): part of every jitted function's cache key, so a function called under
another setting is traced again, never served a program of the previous one.
"""
import contextlib
import dataclasses
from typing import Callable, Iterator

import jax

PLATFORM_GROUPS = {'cpu': ('cpu',), 'gpu': ('cuda', 'rocm'), 'tpu': ('tpu',)}
PLATFORMS = tuple(platform for group in PLATFORM_GROUPS.values() for platform in group)


@dataclasses.dataclass(frozen=True)
class Formulations:
    """Which formulation each platform's convs take (see the module's doc). The defaults are the
    ones measured fastest (benchmarks/README.md)."""
    cpu_min_pixels: int = 1024  # smaller maps (H x W) keep XLA's conv on the CPU too (compile time)
    cpu_winograd_min_channels: int = 64  # below, Winograd's transforms cost more than they save
    gpu_channel_multiple: int = 1  # 1: channels as they are
    platform: str | None = None  # compute as if lowered for this platform (None: as lowered)

    def __post_init__(self):
        if self.platform is not None and self.platform not in PLATFORMS:
            raise ValueError(f'unknown platform {self.platform!r}; accepted: {PLATFORMS}')
        for name in ('cpu_min_pixels', 'cpu_winograd_min_channels', 'gpu_channel_multiple'):
            if getattr(self, name) < (1 if name == 'gpu_channel_multiple' else 0):
                raise ValueError(f'{name} must be positive; got {getattr(self, name)}')


_CURRENT = jax.make_user_context(default_value=Formulations())


def current() -> Formulations:
    """The formulations in effect (`using`), the defaults outside any."""
    return _CURRENT.value


@contextlib.contextmanager
def using(**changes) -> Iterator[Formulations]:
    """Programs traced inside compute with `current()` changed by `changes` (fields of
    `Formulations`); the previous setting is back on exit."""
    with _CURRENT(dataclasses.replace(current(), **changes)):
        yield current()


def platform_branch(*operands, default: Callable, cpu: Callable | None = None, gpu: Callable | None = None,
                    tpu: Callable | None = None) -> jax.Array:
    """`branch(*operands)` for the platform computed for (`Formulations.platform`, else the one
    the program is lowered for), `default` where that platform's branch is None. Every branch
    takes the same operands and gives the same shape and dtype."""
    branches = {'cpu': cpu, 'gpu': gpu, 'tpu': tpu}
    platform = current().platform
    if platform is not None:
        group = next(group for group, members in PLATFORM_GROUPS.items() if platform in members)
        return (branches[group] or default)(*operands)
    by_platform = {platform: branch for group, branch in branches.items() if branch is not None
                   for platform in PLATFORM_GROUPS[group]}
    if not by_platform:
        return default(*operands)
    return jax.lax.platform_dependent(*operands, default=default, **by_platform)
