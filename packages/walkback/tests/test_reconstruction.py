"""The appendix recipe's per-step loss, as the authors' code computes it
(walkback_nips17, train_*_online.py): ``-log_p_reverse = 0.5 * sum |x - mu|`` with mu = F(x)
at the same state, and the next state x_hat = clip(0.5 x + 0.5 (mu + 1e-5 sigma eps), 0, 1)."""

import torch

from gm.build import resolve
from gm.data import load_dataset
from gm.engine import seed_everything


def test_reconstruction_loss_is_half_the_l1_error_of_f_at_the_same_state():
    data = load_dataset("wb-tiny-images")
    cls, cfg = resolve(
        "walkback", data.info, overrides={"hidden": 16, "loss": "reconstruction", "tmax": 8.0}
    )
    seed_everything(0)
    trainer = cls(cfg, data.info, "cpu")
    trainer.train(False)
    s_prev = data.decode(data.raw("train")[:16])
    s_next = torch.rand_like(s_prev)  # unused by this loss: F is applied at s_prev
    with torch.no_grad():
        loss = trainer.step_loss(s_prev, s_next, 4.0, 1)
        f = trainer.operator.net(s_prev, 1)[0]
    want = (0.5 * (s_prev - f).abs()).flatten(1).sum(1).mean()
    assert torch.allclose(loss, want)
    with torch.no_grad():
        heads = trainer.operator.heads(s_prev, 1)
        nxt = trainer._forward_sample(trainer.operator.from_heads(heads, 4.0))
    assert torch.allclose(nxt, heads[0].clamp(0, 1), atol=1e-4)  # noise x 1e-5, clipped


def test_the_forward_step_noise_is_the_operators_std_times_the_scale_then_clipped():
    data = load_dataset("wb-tiny-images")
    cls, cfg = resolve(
        "walkback",
        data.info,
        overrides={"hidden": 16, "loss": "reconstruction", "reconstruction_noise": 1.0},
    )
    seed_everything(0)
    trainer = cls(cfg, data.info, "cpu")
    trainer.train(False)
    s = data.decode(data.raw("train")[:64])
    s = torch.cat([s, torch.full_like(s, 1.8)])  # states whose mean lies above 1: clipped
    with torch.no_grad():
        dist = trainer.operator.distribution(s, 4.0, 1)
        nxt = trainer._forward_sample(dist)
    assert nxt.min() >= 0 and nxt.max() <= 1 and (nxt == 1).any()  # clipped to [0, 1]
    inside = (nxt > 0) & (nxt < 1)
    z = (nxt - dist.mean)[inside] / dist.stddev[inside]
    assert 0.7 < z.std() < 1.1  # one std of noise (clipping trims the tails), not 1e-5


def test_the_walkback_losss_forward_step_is_a_full_draw_of_the_operator():
    """Only loss=reconstruction shrinks the forward noise: the walk-back loss's walk moves
    by the operator's whole noise (and is not clipped)."""
    data = load_dataset("wb-tiny-images")
    cls, cfg = resolve("walkback", data.info, overrides={"hidden": 16})
    seed_everything(0)
    trainer = cls(cfg, data.info, "cpu")
    s = torch.full((64, 1, 8, 8), 1.8)
    with torch.no_grad():
        dist = trainer.operator.distribution(s, 4.0, 1)
        z = (trainer._forward_sample(dist) - dist.mean) / dist.stddev
    assert 0.9 < z.std() < 1.1
