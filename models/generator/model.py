"""The generator network: a conditioned two-layer GRU over event tokens.

Training uses ``torch.nn.GRU`` (fast fused kernels). Export uses :class:`StepModel`, the same
equations written out with plain ``MatMul``s for one token at a time, with the recurrent state as
an ONNX input and output: onnxruntime's dynamic quantization turns each ``MatMul`` into an
integer kernel, whereas a fused ``GRU`` op would stay in float.

Per step (as trained): ``x = [embed(token); controls]``, for each layer
``r = σ(x W_ir + b_ir + h W_hr + b_hr)``, ``z = σ(x W_iz + b_iz + h W_hz + b_hz)``,
``n = tanh(x W_in + b_in + r ⊙ (h W_hn + b_hn))``, ``h' = n + z ⊙ (h − n)``;
``logits = [h'_top; controls] W_out + b_out``.
"""

from __future__ import annotations

import torch
from torch import nn


class Generator(nn.Module):
    def __init__(self, vocab_size: int, n_controls: int, embed: int = 128, hidden: int = 384,
                 layers: int = 2) -> None:
        super().__init__()
        self.vocab_size, self.n_controls = vocab_size, n_controls
        self.embed_dim, self.hidden, self.layers = embed, hidden, layers
        self.embed = nn.Embedding(vocab_size, embed)
        self.gru = nn.GRU(embed + n_controls, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden + n_controls, vocab_size)

    def forward(self, tokens: torch.Tensor, controls: torch.Tensor,
                state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, T] int64, controls [B, T, C] → logits [B, T, V], state [L, B, H]."""
        x = torch.cat([self.embed(tokens), controls], dim=-1)
        h, state = self.gru(x, state)
        return self.out(torch.cat([h, controls], dim=-1)), state

    def config(self) -> dict:
        return {"vocab_size": self.vocab_size, "n_controls": self.n_controls,
                "embed": self.embed_dim, "hidden": self.hidden, "layers": self.layers}


class StepModel(nn.Module):
    """One token per call; the trained :class:`Generator`'s weights, refolded for speed.

    The same function as the GRU, arranged so that a step is few graph nodes (each node costs
    onnxruntime a fixed dispatch time, which dominates at this size):

    - the first layer's input gates for each token are precomputed into one table
      ``embed @ W_ih[:, :E] + b_ih`` (plus the hidden-side r/z biases), so a ``Gather``
      replaces the embedding lookup, a concatenation and a matrix product;
    - the controls' input contribution and the hidden state's three gate products are one
      ``MatMul`` of ``[controls; h]`` with a block matrix ``[[W_c, 0], [W_hh_rz, 0 | W_hh_n]]``
      whose four column blocks are r+z (input and hidden), n (input) and n (hidden).
    """

    def __init__(self, g: Generator) -> None:
        super().__init__()
        H, E, C = g.hidden, g.embed_dim, g.n_controls
        self.layers, self.hidden = g.layers, H
        with torch.no_grad():
            w_ih, w_hh = g.gru.weight_ih_l0, g.gru.weight_hh_l0  # [3H, E+C], [3H, H]
            b_ih, b_hh = g.gru.bias_ih_l0, g.gru.bias_hh_l0
            table = g.embed.weight @ w_ih[:, :E].t() + b_ih
            table[:, : 2 * H] += b_hh[: 2 * H]
            joint = torch.zeros(C + H, 4 * H)
            joint[:C, : 3 * H] = w_ih[:, E:].t()
            joint[C:, : 2 * H] = w_hh[: 2 * H].t()
            joint[C:, 3 * H:] = w_hh[2 * H:].t()
            joint_bias = torch.zeros(4 * H)
            joint_bias[3 * H:] = b_hh[2 * H:]
        self.table = nn.Parameter(table.clone())
        self.joint = nn.Parameter(joint)
        self.joint_bias = nn.Parameter(joint_bias)
        for k in range(1, g.layers):  # upper layers, if any: plain gate products
            for name in ("weight_ih", "weight_hh"):
                w = getattr(g.gru, f"{name}_l{k}").detach().t().contiguous()
                self.register_parameter(f"{name}{k}", nn.Parameter(w))
            for name in ("bias_ih", "bias_hh"):
                b = getattr(g.gru, f"{name}_l{k}").detach().clone()
                self.register_parameter(f"{name}{k}", nn.Parameter(b))
        self.w_out = nn.Parameter(g.out.weight.detach().t().contiguous())
        self.b_out = nn.Parameter(g.out.bias.detach().clone())

    def forward(self, token: torch.Tensor, controls: torch.Tensor,
                state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """token [B] int64, controls [B, C] float, state [L, B, H] → logits [B, V], state."""
        H = self.hidden
        h = state[0]
        gi = self.table[token]
        m = torch.matmul(torch.cat([controls, h], dim=-1), self.joint) + self.joint_bias
        rz = torch.sigmoid(gi[:, : 2 * H] + m[:, : 2 * H])
        r, z = rz[:, :H], rz[:, H:]
        n = torch.tanh(gi[:, 2 * H:] + m[:, 2 * H: 3 * H] + r * m[:, 3 * H:])
        x = n + z * (h - n)
        new = [x]
        for k in range(1, self.layers):
            h = state[k]
            gi = torch.matmul(x, getattr(self, f"weight_ih{k}")) + getattr(self, f"bias_ih{k}")
            gh = torch.matmul(h, getattr(self, f"weight_hh{k}")) + getattr(self, f"bias_hh{k}")
            rz = torch.sigmoid(gi[:, : 2 * H] + gh[:, : 2 * H])
            r, z = rz[:, :H], rz[:, H:]
            n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
            x = n + z * (h - n)
            new.append(x)
        logits = torch.matmul(torch.cat([x, controls], dim=-1), self.w_out) + self.b_out
        return logits, torch.stack(new, dim=0)


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
