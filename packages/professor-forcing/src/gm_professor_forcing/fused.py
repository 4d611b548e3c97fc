"""The free-running pass of a one-layer token GRU as a single autograd node.

Written step by step with autograd, a free-running pass records ~40 small operations
per step and its backward replays them, with two matrix products per step plus a
scatter of the embedding-gate gradient into a full-size table at every step. Here the
forward loop records nothing; the backward is a hand-written BPTT loop with *one*
matrix product per step (the gradient through W_hh to the previous state), and the weight
gradients are formed once after the loop: ``dW_hh`` as one (3H x T*B) @ (T*B x H) product,
the input-gate table's gradient as one ``index_add_``. Nothing inside either loop reads a
value back to the host.

The recurrence is PyTorch's GRU (gate order r, z, n), with the first layer's input gates
of token v precomputed as ``table[v] = W_ih @ embed(v) + b_ih``:

    r = sigmoid(gi_r + gh_r),  z = sigmoid(gi_z + gh_z),  n = tanh(gi_n + r * gh_n),
    h' = n + z * (h - n),      gh = W_hh h + b_hh.

The token fed at step t+1 is the draw of step t from softmax(readout(h_t) / temperature)
(Gumbel-max), or, for scheduled sampling, the true token where ``keep[:, t+1]`` is set.
The draws carry no gradient: the gradient flows through the hidden states only, exactly
as in the step-by-step version (tests compare the two).
"""

from __future__ import annotations

import torch


def gumbel_argmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """A draw from softmax(logits / temperature), argmax at temperature 0; on the device
    (Gumbel-max), so no host synchronisation."""
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(-1)
    noise = -torch.empty_like(logits).exponential_().clamp_min(1e-20).log()  # Gumbel(0, 1)
    return (logits / temperature + noise).argmax(-1)


def _cell(gi: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor):
    hidden = h.shape[1]
    gh = torch.addmm(b_hh, h, w_hh.t())
    rz = torch.sigmoid(gi[:, : 2 * hidden] + gh[:, : 2 * hidden])
    r, z = rz[:, :hidden], rz[:, hidden:]
    gh_n = gh[:, 2 * hidden :]
    n = torch.tanh(torch.addcmul(gi[:, 2 * hidden :], r, gh_n))
    return n + z * (h - n), r, z, n, gh_n


class FreeRunningGRU(torch.autograd.Function):
    """``apply(table, w_hh, b_hh, h0, w_out, b_out, first, steps, temperature, true, keep,
    record)`` -> (hidden (B, T, H), tokens (B, T)). ``first`` (B,) are the first input
    tokens (the start symbol's row of ``table``); ``true``/``keep`` (B, T) are scheduled
    sampling's true tokens and coins, or None for pure free running; ``record`` keeps what
    the backward needs (pass ``torch.is_grad_enabled()``)."""

    @staticmethod
    def forward(
        ctx, table, w_hh, b_hh, h0, w_out, b_out, first, steps, temperature, true, keep, record
    ):
        with torch.autocast(table.device.type, enabled=False):
            table, w_hh, b_hh, h0 = table.float(), w_hh.float(), b_hh.float(), h0.float()
            w_out, b_out = w_out.float(), b_out.float()
            b, hidden = h0.shape
            save = record and any(ctx.needs_input_grad[:4])
            hs = h0.new_empty(b, steps, hidden)
            tokens = torch.empty(b, steps, dtype=torch.long, device=h0.device)
            inputs = torch.empty(steps, b, dtype=torch.long, device=h0.device)
            if save:
                gates = h0.new_empty(steps, 4, b, hidden)  # r, z, n, gh_n per step
            h, token = h0, first
            for t in range(steps):
                inputs[t] = token
                h, r, z, n, gh_n = _cell(table[token], h, w_hh, b_hh)
                hs[:, t] = h
                if save:
                    gates[t, 0], gates[t, 1], gates[t, 2], gates[t, 3] = r, z, n, gh_n
                draw = gumbel_argmax(torch.addmm(b_out, h, w_out.t()), temperature)
                tokens[:, t] = draw
                token = (
                    draw
                    if true is None or t + 1 >= steps
                    else torch.where(keep[:, t + 1], true[:, t], draw)
                )
            if save:
                ctx.save_for_backward(w_hh, h0, hs, inputs, gates)
                ctx.table_rows = table.shape[0]
        ctx.mark_non_differentiable(tokens)
        return hs, tokens

    @staticmethod
    def backward(ctx, d_hs, _d_tokens):
        w_hh, h0, hs, inputs, gates = ctx.saved_tensors
        with torch.autocast(w_hh.device.type, enabled=False):
            b, steps, hidden = hs.shape
            d_hs = d_hs.float() if d_hs is not None else torch.zeros_like(hs)
            d_gi = hs.new_empty(steps, b, 3 * hidden)
            d_gh = hs.new_empty(steps, b, 3 * hidden)
            dh = torch.zeros_like(h0)
            for t in range(steps - 1, -1, -1):
                dh = dh + d_hs[:, t]
                h_prev = hs[:, t - 1] if t > 0 else h0
                r, z, n, gh_n = gates[t]
                d_pre_n = dh * (1 - z) * (1 - n * n)
                d_pre_z = dh * (h_prev - n) * z * (1 - z)
                d_pre_r = d_pre_n * gh_n * r * (1 - r)
                d_gi[t, :, :hidden] = d_pre_r
                d_gi[t, :, hidden : 2 * hidden] = d_pre_z
                d_gi[t, :, 2 * hidden :] = d_pre_n
                d_gh[t, :, : 2 * hidden] = d_gi[t, :, : 2 * hidden]
                d_gh[t, :, 2 * hidden :] = d_pre_n * r
                dh = torch.addmm(dh * z, d_gh[t], w_hh)
            h_prev_all = torch.cat([h0.unsqueeze(0), hs[:, :-1].transpose(0, 1)], 0)
            flat_gh = d_gh.reshape(-1, 3 * hidden)
            d_w_hh = flat_gh.t() @ h_prev_all.reshape(-1, hidden)
            d_b_hh = flat_gh.sum(0)
            d_table = hs.new_zeros(ctx.table_rows, 3 * hidden)
            d_table.index_add_(0, inputs.reshape(-1), d_gi.reshape(-1, 3 * hidden))
        return d_table, d_w_hh, d_b_hh, dh, None, None, None, None, None, None, None, None


@torch.no_grad()
def draw_tokens(table, w_hh, b_hh, h0, w_out, b_out, first, steps: int, temperature: float):
    """Free-running draws only (no hidden states kept): memory O(B * steps) tokens."""
    tokens = torch.empty(h0.shape[0], steps, dtype=torch.long, device=h0.device)
    h, token = h0.float(), first
    table, w_hh, b_hh, w_out, b_out = (t.float() for t in (table, w_hh, b_hh, w_out, b_out))
    for t in range(steps):
        h = _cell(table[token], h, w_hh, b_hh)[0]
        token = gumbel_argmax(torch.addmm(b_out, h, w_out.t()), temperature)
        tokens[:, t] = token
    return tokens
