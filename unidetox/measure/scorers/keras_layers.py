"""Keras layers at inference in PyTorch (float32): Embedding, LSTM, Bidirectional(LSTM), GlobalMaxPooling1D, Dense,
chained by :class:`KerasSequentialNet` from a stored Keras model config and its weights."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import torch

from unidetox.measure.scorers.base import ScorerError


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras 2 (tf.keras <= 2.x) ``hard_sigmoid``: clip(0.2 x + 0.5, 0, 1)."""
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


KERAS_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda x: x,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "hard_sigmoid": hard_sigmoid,
}


def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name not in KERAS_ACTIVATIONS:
        raise ScorerError(f"Keras activation {name!r} is not ported (known: {', '.join(KERAS_ACTIVATIONS)})")
    return KERAS_ACTIVATIONS[name]


def keras_lstm(
    x: torch.Tensor,
    kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    activation: str = "tanh",
    recurrent_activation: str = "hard_sigmoid",
) -> torch.Tensor:
    """D independent Keras LSTMs run in lockstep from zero state (D=2: the two directions of a Bidirectional).

    Shapes: x (D, B, T, in), kernel (D, in, 4H), recurrent_kernel (D, H, 4H), bias (D, 4H) -> outputs (D, B, T, H).
    Keras gate order i, f, c, o: ``z = x W + h U + b``; i, f, o = rec_act(z_i, z_f, z_o); c = f c + i act(z_c);
    h = o act(c).
    """
    act, rec = _activation(activation), _activation(recurrent_activation)
    d, b, t, _ = x.shape
    h_units = recurrent_kernel.shape[1]
    xz = torch.einsum("dbti,dij->dtbj", x, kernel)  # input projections of all steps at once
    if bias is not None:
        xz = xz + bias[:, None, None, :]
    h = x.new_zeros(d, b, h_units)
    c = x.new_zeros(d, b, h_units)
    outs = []
    with one_cpu_thread(x.device):
        for step in range(t):
            z = torch.baddbmm(xz[:, step], h, recurrent_kernel)
            zi, zf, zc, zo = z.split(h_units, dim=-1)
            c = rec(zf) * c + rec(zi) * act(zc)
            h = rec(zo) * act(c)
            outs.append(h)
    return torch.stack(outs, dim=2)


@contextlib.contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run the many tiny per-step CPU ops on one thread: with OpenMP workers they gain nothing and, on a busy
    machine, each op can wait milliseconds for its thread team (measured 100x slower on 2 shared cores)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _KEmbedding(torch.nn.Module):
    def __init__(self, cfg: dict, weights: list[np.ndarray]):
        super().__init__()
        if cfg.get("mask_zero"):
            raise ScorerError("Keras Embedding(mask_zero=True) is not ported")
        self.register_buffer("table", torch.from_numpy(weights[0]))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, E)
        return self.table[ids]


class _KLSTM(torch.nn.Module):
    """Keras ``LSTM`` or ``Bidirectional(LSTM, merge_mode='concat')`` at inference (dropouts inactive)."""

    def __init__(self, class_name: str, cfg: dict, weights: list[np.ndarray]):
        super().__init__()
        if class_name == "Bidirectional":
            if cfg.get("merge_mode", "concat") != "concat":
                raise ScorerError(f"Bidirectional merge_mode {cfg.get('merge_mode')!r} is not ported (only concat)")
            inner = cfg["layer"]
            if inner["class_name"] != "LSTM":
                raise ScorerError(f"Bidirectional({inner['class_name']}) is not ported (only LSTM)")
            lcfg, directions = inner["config"], [False, True]
        else:
            lcfg, directions = cfg, [bool(cfg.get("go_backwards", False))]
        if lcfg.get("stateful") or lcfg.get("return_state") or lcfg.get("time_major"):
            raise ScorerError("stateful / return_state / time_major Keras LSTMs are not ported")
        per = 3 if lcfg.get("use_bias", True) else 2
        if len(weights) != per * len(directions):
            raise ScorerError(f"LSTM weights: expected {per * len(directions)} arrays, found {len(weights)}")
        groups = [weights[i * per : (i + 1) * per] for i in range(len(directions))]
        self.register_buffer("kernel", torch.from_numpy(np.stack([g[0] for g in groups])))
        self.register_buffer("recurrent_kernel", torch.from_numpy(np.stack([g[1] for g in groups])))
        self.register_buffer("bias", torch.from_numpy(np.stack([g[2] for g in groups])) if per == 3 else None)
        self.backwards = directions
        self.bidirectional = class_name == "Bidirectional"
        self.return_sequences = bool(lcfg.get("return_sequences", False))
        self.activation = lcfg.get("activation", "tanh")
        self.recurrent_activation = lcfg.get("recurrent_activation", "hard_sigmoid")
        _activation(self.activation), _activation(self.recurrent_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, in) -> (B, T, D*H) or (B, D*H)
        xs = torch.stack([x.flip(1) if back else x for back in self.backwards])
        ys = keras_lstm(xs, self.kernel, self.recurrent_kernel, self.bias,
                        activation=self.activation, recurrent_activation=self.recurrent_activation)  # fmt: skip
        if not self.return_sequences:
            return torch.cat(list(ys[:, :, -1]), dim=-1)
        if not self.bidirectional:  # a lone go_backwards LSTM returns its outputs in processing order
            return ys[0]
        # Bidirectional re-reverses the backward direction's outputs so that both are aligned in time.
        return torch.cat([ys[0], ys[1].flip(1)], dim=-1)


class _KGlobalMaxPool1D(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, C)
        return x.amax(dim=1)


class _KDense(torch.nn.Module):
    def __init__(self, cfg: dict, weights: list[np.ndarray]):
        super().__init__()
        self.register_buffer("kernel", torch.from_numpy(weights[0]))
        self.register_buffer("bias", torch.from_numpy(weights[1]) if cfg.get("use_bias", True) else None)
        self.act_name = cfg.get("activation", "linear")
        self.act = _activation(self.act_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in) -> (B, units)
        y = x @ self.kernel
        return self.act(y + self.bias if self.bias is not None else y)


class KerasSequentialNet(torch.nn.Module):
    """A linear chain of Keras layers (Embedding, LSTM, Bidirectional(LSTM), GlobalMaxPooling1D, Dense, Dropout),
    rebuilt from a stored Keras model config and weights; float32, inference only. ids (B, T) -> (B, outputs)."""

    def __init__(self, config: dict, weights: Mapping[str, list[np.ndarray]]):
        super().__init__()
        layers = config.get("config", {}).get("layers", [])
        mods, self.input_length, previous = [], None, None
        for layer in layers:
            kind, name, cfg = layer["class_name"], layer.get("name") or layer["config"]["name"], layer["config"]
            inbound = [n[0] for node in layer.get("inbound_nodes", []) for n in node]
            if previous is not None and inbound != [previous]:
                raise ScorerError(f"Keras layer {name!r} does not follow {previous!r}: only linear stacks are ported")
            previous = name
            w = weights.get(name, [])
            if kind == "InputLayer":
                shape = cfg.get("batch_input_shape") or [None, None]
                self.input_length = shape[1]
            elif kind == "Embedding":
                mods.append(_KEmbedding(cfg, w))
            elif kind in ("LSTM", "Bidirectional"):
                mods.append(_KLSTM(kind, cfg, w))
            elif kind == "GlobalMaxPooling1D":
                if cfg.get("data_format", "channels_last") != "channels_last":
                    raise ScorerError("GlobalMaxPooling1D(data_format='channels_first') is not ported")
                mods.append(_KGlobalMaxPool1D())
            elif kind == "Dense":
                mods.append(_KDense(cfg, w))
            elif kind == "Dropout":
                continue  # identity at inference
            else:
                raise ScorerError(f"Keras layer {name!r} of class {kind} is not ported")
        if not mods:
            raise ScorerError("the Keras model config holds no layers")
        self.layers = torch.nn.Sequential(*mods)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.layers(ids)


__all__ = ["KERAS_ACTIVATIONS", "KerasSequentialNet", "hard_sigmoid", "keras_lstm", "one_cpu_thread"]
