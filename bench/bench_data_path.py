"""The data path never starves the device: batches per second from a cached in-memory uint8
split against training steps per second of the largest model (walkback's CelebA conv operator,
paper config), on the same machine, in one run."""

import argparse

import torch
from _report import table, timeit, write_section

from gm.build import resolve
from gm.data import DataInfo, Dataset


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    dev = torch.device(a.device)
    images = torch.randint(0, 256, (a.n, 3, 64, 64), dtype=torch.uint8)
    data = Dataset(DataInfo("celeba-shaped", "image", (3, 64, 64)), {"train": images}).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    batches = data.batches("train", a.batch, seed=0)
    per_batch = timeit(lambda: [next(batches) for _ in range(50)], repeat=5, sync=sync) / 50

    cls, cfg = resolve("walkback", data.info, dev, overrides={"batch_size": a.batch})
    torch.manual_seed(0)
    trainer = cls(cfg, data.info, dev)
    trainer.train(True)
    train_batches = data.batches("train", a.batch, seed=1)
    per_step = timeit(lambda: trainer.training_step(next(train_batches)), repeat=3, sync=sync)
    rows = [
        {"what": "cached uint8 batch (decode to float on device)", "per second": 1 / per_batch},
        {"what": "walkback CelebA training step (paper conv config)", "per second": 1 / per_step},
        {"what": "ratio (data / training)", "per second": per_step / per_batch},
    ]
    body = (
        f"batch {a.batch} of 3x64x64, device {dev}; the training step is one minibatch of "
        f"Algorithm 1 (about {len(trainer.walk(0))} walk steps, an update each).\n\n"
        + table(rows, ["what", "per second"])
    )
    write_section(
        "data_path",
        "Data path vs the largest model's training step",
        "python bench/bench_data_path.py",
        body,
        {"batch_per_s": 1 / per_batch, "step_per_s": 1 / per_step},
    )
    print(body)


if __name__ == "__main__":
    main()
