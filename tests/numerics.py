"""Helpers of the tests that compare floats computed in two orders (marker ``numerics``; see pyproject.toml).

Such a test must hold on any CPU: its tolerance follows from the computation (how many float32 roundings can
differ, and by how much), never from what one machine printed; and what it compares must be stable under
round-off. `.ci/run` reruns these tests under other CPU kernels (``ATEN_CPU_CAPABILITY=avx2``).
"""

from __future__ import annotations

import torch

#: float32 unit roundoff (half the distance from 1.0 to the next float)
U = 2.0**-24
#: Tolerance of a weight's movement, relative to the largest movement in its tensor, for runs whose gradients are
#: summed in other orders. A gradient entry comes out of a chain of ~10 float32 reductions (forward and backward
#: matmuls, norms, softmax); the longest runs over the vocabulary. A sum of n terms taken in another order differs by
#: at most n U of the magnitude of its terms (Wilkinson; 1.5e-5 for tiny:llama's 259 tokens) and, with high
#: probability, by about sqrt(n) U (Higham and Mary; 1.3e-5 for GPT-2's 50257), so ~10 of them by ~1.5e-4 of the
#: scale of the tensor's entries, which its largest movement measures. Seen in the two-process test, beyond the
#: 2 steps U |w| of rounding the weights: <= 2.5e-7 (AMD EPYC; ATen's AVX512, AVX2 and no-SIMD kernels).
MOVE_TOL = 1.5e-4


def sgd_instead_of_adamw(groups, lr, **_):
    """The training loop's optimizer replaced by plain SGD, for comparing runs whose float sums differ in order.

    AdamW divides each gradient entry by the root of its second moment: an entry near zero moves by up to the
    learning rate whatever its sign, so a round-off that flips its sign changes that weight by ~2 lr after one step,
    and after several steps no elementwise tolerance separates round-off from a bug. SGD moves a weight by lr times
    its gradient: round-off in a gradient stays round-off in the weight, and the comparison can be tight.
    """
    return torch.optim.SGD(groups, lr=lr)


def assert_same_training(a: dict, b: dict, start: dict, steps: int) -> None:
    """Weights `b` equal `a` after `steps` SGD steps from `start`, up to round-off: every entry within
    ``2 steps U |w|`` (each run rounds w - lr g once per step) plus MOVE_TOL of its tensor's largest movement; every
    tensor with a gradient moved."""
    assert a.keys() == b.keys() == start.keys()
    for k, w in a.items():
        move = (w.double() - start[k].double()).abs().max().item()
        assert move > 0, f"{k} did not move: the comparison would be vacuous"
        torch.testing.assert_close(b[k].double(), w.double(), rtol=2 * steps * U, atol=MOVE_TOL * move, msg=k)
