"""The generator network: a conditioned two-layer GRU over event tokens.

Training uses ``torch.nn.GRU`` (fast fused kernels). Export uses :class:`StepModel`, the same
equations written out with plain ``MatMul``s for one token at a time, with the recurrent state as
an ONNX input and output: onnxruntime's dynamic quantization turns each ``MatMul`` into an
integer kernel, whereas a fused ``GRU`` op would stay in float.

Per step: ``x = [embed(token); controls]``, for each layer
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
    """One token per call; weights shared with a trained :class:`Generator`."""

    def __init__(self, g: Generator) -> None:
        super().__init__()
        self.layers, self.hidden = g.layers, g.hidden
        self.embed = nn.Parameter(g.embed.weight.detach().clone())
        for k in range(g.layers):
            # stored transposed so that the graph is x @ W (MatMul), gates in order r, z, n
            self.register_parameter(f"w_ih{k}", nn.Parameter(
                getattr(g.gru, f"weight_ih_l{k}").detach().t().contiguous()))
            self.register_parameter(f"w_hh{k}", nn.Parameter(
                getattr(g.gru, f"weight_hh_l{k}").detach().t().contiguous()))
            self.register_parameter(f"b_ih{k}", nn.Parameter(
                getattr(g.gru, f"bias_ih_l{k}").detach().clone()))
            self.register_parameter(f"b_hh{k}", nn.Parameter(
                getattr(g.gru, f"bias_hh_l{k}").detach().clone()))
        self.w_out = nn.Parameter(g.out.weight.detach().t().contiguous())
        self.b_out = nn.Parameter(g.out.bias.detach().clone())

    def forward(self, token: torch.Tensor, controls: torch.Tensor,
                state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """token [B] int64, controls [B, C] float, state [L, B, H] → logits [B, V], state."""
        x = torch.cat([self.embed[token], controls], dim=-1)
        new = []
        H = self.hidden
        for k in range(self.layers):
            h = state[k]
            gi = torch.matmul(x, getattr(self, f"w_ih{k}")) + getattr(self, f"b_ih{k}")
            gh = torch.matmul(h, getattr(self, f"w_hh{k}")) + getattr(self, f"b_hh{k}")
            rz = torch.sigmoid(gi[:, :2 * H] + gh[:, :2 * H])
            r, z = rz[:, :H], rz[:, H:]
            n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
            h = n + z * (h - n)
            new.append(h)
            x = h
        logits = torch.matmul(torch.cat([x, controls], dim=-1), self.w_out) + self.b_out
        return logits, torch.stack(new, dim=0)


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
