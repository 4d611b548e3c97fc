"""Hand-written GRU loops, each a single autograd node.

Written step by step with autograd, a free-running pass records ~40 small operations
per step and its backward replays them, with two matrix products per step plus a
scatter of the embedding-gate gradient into a full-size table at every step. ``nn.GRU``
on CPU is no better: it is not a fused kernel, and its backward replays autograd step by
step, accumulating a full-size ``dW_hh`` at every step. Here the forward loop records
nothing; the backward is a hand-written BPTT loop with *one* matrix product per step (the
gradient through W_hh to the previous state), and the weight gradients are formed once
after the loop: ``dW_hh`` as one (3H x T*B) @ (T*B x H) product, the input-gate table's
gradient as one ``index_add_`` (tokens) or ``dW_ih`` as one product (real inputs).
Nothing inside either loop reads a value back to the host.

- :class:`FreeRunningGRU`: a one-layer token GRU fed its own draws (free running) or
  scheduled sampling's mix of true tokens and draws;
- :class:`TeacherForcedGRU`: the same GRU fed given tokens (teacher forcing);
- :class:`GRULayer`: one layer of an ``nn.GRU`` over real inputs, both directions at once
  (the discriminator's bidirectional GRU).

The recurrence is PyTorch's GRU (gate order r, z, n), with the input gates
``gi = W_ih x + b_ih`` (for tokens precomputed per token, ``table[v] = W_ih embed(v) + b_ih``):

    r = sigmoid(gi_r + gh_r),  z = sigmoid(gi_z + gh_z),  n = tanh(gi_n + r * gh_n),
    h' = n + z * (h - n),      gh = W_hh h + b_hh.

The loops keep sequences step-major, so a step's slice is contiguous, and multiply by a
contiguous copy of W_hh^T (measured faster on CPU than ``h @ W_hh.t()``: docs/benchmarks.md).
The token fed at step t+1 is the draw of step t from softmax(readout(h_t) / temperature)
(Gumbel-max), or, for scheduled sampling, the true token where ``keep[:, t+1]`` is set.
The draws carry no gradient: the gradient flows through the hidden states only, exactly
as in the step-by-step version (tests compare the two).
"""

from __future__ import annotations

import torch

from gm import progress

LONG = 200  # sequences from this many steps show a bar while drawn


def gumbel_argmax(
    logits: torch.Tensor, temperature: float, exponential: torch.Tensor | None = None
) -> torch.Tensor:
    """A draw from softmax(logits / temperature), argmax at temperature 0; on the device
    (Gumbel-max), so no host synchronisation. ``exponential``: Exp(1) noise of the logits'
    shape drawn by the caller (the sampling fast path draws it outside a compiled step);
    drawn here, by the same call, when None."""
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(-1)
    if exponential is None:
        exponential = torch.empty_like(logits).exponential_()
    noise = -exponential.clamp_min(1e-20).log()  # Gumbel(0, 1)
    return (logits / temperature + noise).argmax(-1)


def _cell(gi, h, w_hh_t, b_hh, out, gates=None) -> torch.Tensor:
    """One GRU step: ``h`` (N, H) with ``w_hh_t`` = W_hh^T (H, 3H), or ``h`` (D, N, H) with
    ``w_hh_t`` (D, H, 3H) for D independent directions at once. Writes h' into ``out`` and,
    when given, what the backward needs into ``gates`` (..., 4H): r | z | n | gh_n."""
    hidden = h.shape[-1]
    if h.dim() == 2:
        gh = torch.addmm(b_hh, h, w_hh_t)
    else:
        gh = torch.baddbmm(b_hh.unsqueeze(1), h, w_hh_t)
    keep = gates is not None
    rz = torch.sigmoid(
        gi[..., : 2 * hidden] + gh[..., : 2 * hidden],
        out=gates[..., : 2 * hidden] if keep else None,
    )
    gh_n = gh[..., 2 * hidden :]
    n = torch.addcmul(gi[..., 2 * hidden :], rz[..., :hidden], gh_n)
    n = torch.tanh(n, out=gates[..., 2 * hidden : 3 * hidden] if keep else None)
    if keep:
        gates[..., 3 * hidden :] = gh_n
    return torch.addcmul(n, rz[..., hidden:], h - n, out=out)


def _backward(d_hs, hs, h0, gates, w_hh, weights: bool):
    """BPTT through a GRU layer run by :func:`_cell`, for D directions at once.

    ``d_hs``, ``hs`` (D, T, N, H) are the states' gradients and the states (step-major),
    ``h0`` (D, N, H), ``gates`` (D, T, N, 4H), ``w_hh`` (D, 3H, H). Returns ``d_gi``
    (D, T, N, 3H), the gradient of the input gates; ``dh0``; and, when ``weights``,
    ``d_w_hh`` and ``d_b_hh`` formed once after the loop (None otherwise). One batched
    matrix product per step."""
    d, steps, b, hidden = hs.shape
    d_gh = hs.new_empty(d, steps, b, 3 * hidden)  # d gh: r | z | n * r
    d_n = hs.new_empty(d, steps, b, hidden)  # d gi, n part (its r, z parts are d_gh's)
    one = hs.new_ones(())
    dh = torch.zeros_like(h0)
    for t in range(steps - 1, -1, -1):  # in-place and out= arithmetic: few operations per step
        dh.add_(d_hs[:, t])
        h_prev = hs[:, t - 1] if t > 0 else h0
        g = gates[:, t]
        r, z = g[..., :hidden], g[..., hidden : 2 * hidden]
        n, gh_n = g[..., 2 * hidden : 3 * hidden], g[..., 3 * hidden :]
        dgh, dn = d_gh[:, t], d_n[:, t]
        one_m_z = torch.rsub(z, 1)
        torch.mul(dh, one_m_z, out=dn).mul_(torch.addcmul(one, n, n, value=-1))  # pre-tanh
        dz = torch.sub(h_prev, n, out=dgh[..., hidden : 2 * hidden])
        dz.mul_(dh).mul_(z).mul_(one_m_z)  # pre-sigmoid z
        dr = torch.mul(dn, gh_n, out=dgh[..., :hidden])
        dr.mul_(torch.addcmul(r, r, r, value=-1))  # pre-sigmoid r
        torch.mul(dn, r, out=dgh[..., 2 * hidden :])
        dh = torch.baddbmm(dh.mul_(z), dgh, w_hh)
    d_gi = torch.cat([d_gh[..., : 2 * hidden], d_n], -1)
    if not weights:
        return d_gi, dh, None, None
    flat_gh = d_gh.view(d, -1, 3 * hidden)
    d_w_hh = (  # steps 1.. meet hs[:, :-1], step 0 meets h0
        flat_gh[:, b:].transpose(1, 2) @ hs[:, :-1].reshape(d, -1, hidden)
        + d_gh[:, 0].transpose(1, 2) @ h0
    )
    return d_gi, dh, d_w_hh, flat_gh.sum(1)


# --- token GRUs ----------------------------------------------------------------------------
def _token_loop(table, w_hh, b_hh, h0, forced, first, steps, w_out, b_out, temperature, **kw):
    """The loop of the token passes. With ``forced`` (B, steps) the rows are fed those tokens
    (teacher forcing). Without, they start from ``first`` (B,) and are fed their own draws
    from softmax(readout(h) / temperature), or, for scheduled sampling, the true token
    ``kw["true"][:, t]`` where ``kw["keep"][:, t + 1]``. Returns, step-major: hidden
    (steps, B, H), draws (steps, B) (None when forced), inputs (steps, B), and gates
    (1, steps, B, 4H) when ``kw["save"]`` (else None)."""
    true, keep, save = kw.get("true"), kw.get("keep"), kw.get("save", False)
    rows, hidden = h0.shape
    w_hh_t = w_hh.t().contiguous()
    hs = h0.new_empty(steps, rows, hidden)
    gates = h0.new_empty(1, steps, rows, 4 * hidden) if save else None
    if forced is not None:
        inputs, tokens = forced.t().contiguous(), None
    else:
        w_out_t = w_out.t().contiguous()
        inputs = torch.empty(steps, rows, dtype=torch.long, device=h0.device)
        tokens = torch.empty(steps, rows, dtype=torch.long, device=h0.device)
    h, token = h0, first
    # a bar for long free runs (gm sample); silent inside training's bar
    desc = "free-running" if forced is None else "teacher-forced"
    for t in progress.track(range(steps), steps, desc, min_total=LONG):
        if forced is None:
            inputs[t] = token
        h = _cell(
            table.index_select(0, inputs[t]), h, w_hh_t, b_hh, hs[t], gates[0, t] if save else None
        )
        if forced is None:
            draw = gumbel_argmax(torch.addmm(b_out, h, w_out_t), temperature)
            tokens[t] = draw
            token = (
                draw
                if true is None or t + 1 >= steps
                else torch.where(keep[:, t + 1], true[:, t], draw)
            )
    return hs, tokens, inputs, gates


def _token_backward(ctx, d_hs):
    """The backward shared by the token passes: (d_table, d_w_hh, d_b_hh, d_h0)."""
    w_hh, h0, hs, inputs, gates = ctx.saved_tensors
    with torch.autocast(w_hh.device.type, enabled=False):
        d_hs = torch.zeros_like(hs) if d_hs is None else d_hs.float().transpose(0, 1)
        d_gi, dh, d_w_hh, d_b_hh = _backward(
            d_hs.unsqueeze(0),
            hs.unsqueeze(0),
            h0.unsqueeze(0),
            gates,
            w_hh.unsqueeze(0),
            True,
        )
        d_table = hs.new_zeros(ctx.table_rows, d_gi.shape[-1])
        d_table.index_add_(0, inputs.reshape(-1), d_gi.reshape(-1, d_gi.shape[-1]))
    return d_table, d_w_hh[0], d_b_hh[0], dh[0]


class FreeRunningGRU(torch.autograd.Function):
    """``apply(table, w_hh, b_hh, h0, w_out, b_out, first, steps, temperature, true, keep,
    record)`` -> (hidden (B, T, H), tokens (B, T)). ``first`` (B,) are the first input
    tokens (the start symbol's row of ``table``); ``true``/``keep`` (B, T) are scheduled
    sampling's true tokens and coins, or None for pure free running; ``record`` keeps what
    the backward needs (pass ``torch.is_grad_enabled()``)."""

    @staticmethod
    def forward(
        ctx,
        table,
        w_hh,
        b_hh,
        h0,
        w_out,
        b_out,
        first,
        steps,
        temperature,
        true,
        keep,
        record,
    ):
        with torch.autocast(table.device.type, enabled=False):
            table, w_hh, b_hh, h0 = table.float(), w_hh.float(), b_hh.float(), h0.float()
            w_out, b_out = w_out.float(), b_out.float()
            save = record and any(ctx.needs_input_grad[:4])
            hs, tokens, inputs, gates = _token_loop(
                table,
                w_hh,
                b_hh,
                h0,
                None,
                first,
                steps,
                w_out,
                b_out,
                temperature,
                true=true,
                keep=keep,
                save=save,
            )
            if save:
                ctx.save_for_backward(w_hh, h0, hs, inputs, gates)
                ctx.table_rows = table.shape[0]
        tokens = tokens.t().contiguous()
        ctx.mark_non_differentiable(tokens)
        return hs.transpose(0, 1).contiguous(), tokens

    @staticmethod
    def backward(ctx, d_hs, _d_tokens):
        return *_token_backward(ctx, d_hs), *([None] * 8)


class TeacherForcedGRU(torch.autograd.Function):
    """``apply(table, w_hh, b_hh, h0, inputs, record)`` -> hidden (B, T, H): a one-layer
    token GRU fed the given ``inputs`` (B, T) (rows of ``table``), as one autograd node
    with :class:`FreeRunningGRU`'s loop and backward."""

    @staticmethod
    def forward(ctx, table, w_hh, b_hh, h0, inputs, record):
        with torch.autocast(table.device.type, enabled=False):
            table, w_hh, b_hh, h0 = table.float(), w_hh.float(), b_hh.float(), h0.float()
            save = record and any(ctx.needs_input_grad[:4])
            steps = inputs.shape[1]
            hs, _, inputs, gates = _token_loop(
                table, w_hh, b_hh, h0, inputs, None, steps, None, None, 1.0, save=save
            )
            if save:
                ctx.save_for_backward(w_hh, h0, hs, inputs, gates)
                ctx.table_rows = table.shape[0]
        return hs.transpose(0, 1).contiguous()

    @staticmethod
    def backward(ctx, d_hs):
        return *_token_backward(ctx, d_hs), None, None


@torch.no_grad()
def draw_tokens(table, w_hh, b_hh, h0, w_out, b_out, first, steps: int, temperature: float):
    """Free-running draws only (no hidden states kept): memory O(B * steps) tokens."""
    table, w_hh, b_hh, w_out, b_out = (t.float() for t in (table, w_hh, b_hh, w_out, b_out))
    _, tokens, _, _ = _token_loop(
        table, w_hh, b_hh, h0.float(), None, first, steps, w_out, b_out, temperature
    )
    return tokens.t().contiguous()


# --- real inputs, one or both directions ---------------------------------------------------
class GRULayer(torch.autograd.Function):
    """``apply(x, record, *params)`` -> (N, L, D*H): one layer of an ``nn.GRU``
    (``batch_first``, zero initial state) with D = 1 or 2 directions, ``params`` =
    (w_ih, w_hh, b_ih, b_hh) per direction in ``nn.GRU``'s order; ``record`` as in
    :class:`FreeRunningGRU`. The input gates of both directions are one matrix product over
    all steps; the loop advances both directions together (one batched product per step);
    the backward forms the weight gradients after the loop and the input's gradient as one
    product, each only when asked for (a frozen layer: the input's gradient only; a detached
    input: the weight gradients only)."""

    @staticmethod
    def forward(ctx, x, record, *params):
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            params = [p.float() for p in params]
            dirs = len(params) // 4
            w_ih, w_hh = torch.stack(params[0::4]), torch.stack(params[1::4])  # (D, 3H, F|H)
            b_ih, b_hh = torch.stack(params[2::4]), torch.stack(params[3::4])
            n_seq, length, features = x.shape
            hidden = w_hh.shape[-1]
            # each direction's inputs in its own step order, step-major: (L*N, F)
            xt = x.transpose(0, 1).contiguous()
            xs = [xt, xt.flip(0)][:dirs]
            xs = [xk.view(length * n_seq, features) for xk in xs]
            gi = x.new_empty(dirs, length, n_seq, 3 * hidden)
            for k in range(dirs):
                torch.addmm(b_ih[k], xs[k], w_ih[k].t(), out=gi[k].view(length * n_seq, -1))
            h0 = x.new_zeros(dirs, n_seq, hidden)
            hs = x.new_empty(dirs, length, n_seq, hidden)
            weights = any(ctx.needs_input_grad[2:])
            save = record and (weights or ctx.needs_input_grad[0])
            gates = x.new_empty(dirs, length, n_seq, 4 * hidden) if save else None
            w_hh_t = w_hh.transpose(1, 2).contiguous()
            h = h0
            for t in range(length):
                h = _cell(gi[:, t], h, w_hh_t, b_hh, hs[:, t], gates[:, t] if save else None)
            out = [hs[0].transpose(0, 1)]
            if dirs == 2:
                out.append(hs[1].flip(0).transpose(0, 1))
            out = torch.cat(out, -1)
            if save:
                ctx.save_for_backward(
                    *(xs if weights else [None] * dirs), w_ih, w_hh, h0, hs, gates
                )
                ctx.weights = weights
        return out

    @staticmethod
    def backward(ctx, d_out):
        *xs, w_ih, w_hh, h0, hs, gates = ctx.saved_tensors
        with torch.autocast(w_hh.device.type, enabled=False):
            dirs, length, n_seq, hidden = hs.shape
            d_out = d_out.float()
            d_hs = [d_out[..., :hidden].transpose(0, 1)]
            if dirs == 2:
                d_hs.append(d_out[..., hidden:].flip(1).transpose(0, 1))
            d_gi, _, d_w_hh, d_b_hh = _backward(torch.stack(d_hs), hs, h0, gates, w_hh, ctx.weights)
            d_gi = d_gi.view(dirs, length * n_seq, -1)  # each direction in its step order
            d_x = None
            if ctx.needs_input_grad[0]:  # (L, N, F) in time order, returned as (N, L, F)
                d_x = (d_gi[0] @ w_ih[0]).view(length, n_seq, -1)
                if dirs == 2:
                    d_x = d_x + (d_gi[1] @ w_ih[1]).view(length, n_seq, -1).flip(0)
                d_x = d_x.transpose(0, 1)
            if not ctx.weights:
                return d_x, None, *([None] * 4 * dirs)
            d_w_ih = [d_gi[k].t() @ xs[k] for k in range(dirs)]
            d_b_ih = d_gi.sum(1)
        grads = []
        for i in range(dirs):
            grads += [d_w_ih[i], d_w_hh[i], d_b_ih[i], d_b_hh[i]]
        return d_x, None, *grads
