"""Character-level text: ``ptb-char`` (Penn Treebank) and ``text:FILE`` (any UTF-8 text).

Text becomes one character stream per split, cut into non-overlapping windows of
``seq_len`` characters (default 100; the tail shorter than a window is dropped), stored as
int64 tokens (N, seq_len) indexing ``info.meta["alphabet"]`` (a string of the distinct
characters in code-point order; ``info.vocab_size == len(alphabet)``).

PTB: each sentence (a line of ``ptb.{train,valid,test}.txt`` read with the ``text`` builder,
or a ``sentence`` of the Hub's parquet export) is stripped and contributes
``" " + sentence + "\\n"`` — the raw line with its trailing blank dropped — so ``<unk>`` stays
5 characters. The full corpus gives 5,059,566 / 396,412 / 446,184 characters and a
50-symbol alphabet (49 + newline); blank lines are not sentences.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from gm.errors import GMError
from gm_datasets import cache
from gm_datasets.common import LabelledDataset, make_dataset, provenance
from gm_datasets.sources import by_split

PTB_CHARS = {"train": 5_059_566, "valid": 396_412, "test": 446_184}
PTB_SENTENCES = {"train": 42_068, "valid": 3_370, "test": 3_761}
PTB_ALPHABET_SIZE = 50


def ptb_piece(sentence: str) -> str:
    return " " + sentence.strip() + "\n"


def _sentences(split_files: list[Path]) -> list[str]:
    import datasets

    out: list[str] = []
    for f in split_files:
        try:
            if f.suffix == ".parquet":
                from gm_datasets.decode import parquet_rows

                _, cols = parquet_rows(f)
                if "sentence" not in cols:
                    raise GMError(f"{f} has no 'sentence' column (it has {', '.join(cols)}).")
                ds = datasets.load_dataset(
                    "parquet", data_files=[str(f)], split="train", streaming=True
                )
                rows = (r["sentence"] for r in ds)
            else:
                ds = datasets.load_dataset(
                    "text", data_files=[str(f)], split="train", streaming=True
                )
                rows = (r["text"] for r in ds)
            out.extend(s for s in rows if s and s.strip())
        except GMError:
            raise
        except UnicodeDecodeError as err:
            raise GMError(f"{f} is not UTF-8 text ({err}).") from None
        except Exception as err:  # noqa: BLE001 - pyarrow/datasets errors: name the file
            raise GMError(f"could not read {f} ({type(err).__name__}: {err}).") from None
    return out


def encode(stream: str, alphabet: str) -> np.ndarray:
    """Characters -> uint8/int indices into ``alphabet`` (which must hold them all)."""
    table = {c: i for i, c in enumerate(alphabet)}
    return np.fromiter((table[c] for c in stream), dtype=np.int64, count=len(stream))


def ptb_arrays(data_dir: str | None, source_dir: str | None) -> tuple[dict[str, np.ndarray], dict]:
    def build(folder, files, where):
        texts = [f for f in files if f.suffix == ".txt"]
        groups = by_split("ptb-char", folder, texts or files)  # raw text files win over parquet
        missing = [s for s in ("train", "valid", "test") if s not in groups]
        if missing:
            raise GMError(f"{folder} has no {'/'.join(missing)} split of ptb-char.")
        streams, sentences = {}, {}
        for split in ("train", "valid", "test"):
            lines = _sentences(groups[split])
            sentences[split] = len(lines)
            streams[split] = "".join(ptb_piece(s) for s in lines)
        alphabet = "".join(sorted(set("".join(streams.values()))))
        if len(alphabet) > 255:
            raise GMError(
                f"{folder} has {len(alphabet)} distinct characters; is it the Penn Treebank?"
            )
        arrays = {s: encode(t, alphabet).astype(np.uint8) for s, t in streams.items()}
        return arrays, {
            "found": where,
            "folder": str(folder),
            "alphabet": alphabet,
            "sentences": sentences,
            "files": [str(f.relative_to(folder)) for f in files],
        }

    return cache.cached_source("ptb-char", build, data_dir=data_dir, source_dir=source_dir)


def windows(codes: np.ndarray, seq_len: int, what: str) -> np.ndarray:
    n = len(codes) // seq_len
    if n == 0:
        raise GMError(
            f"{what} has {len(codes)} characters, fewer than one window of seq_len={seq_len}; "
            f"use a smaller --data-option seq_len=N."
        )
    return codes[: n * seq_len].astype(np.int64).reshape(n, seq_len)


def ptb_char(
    data_dir: str | None = None, source_dir: str | None = None, seq_len: int = 100
) -> LabelledDataset:
    """Penn Treebank characters, windows of ``seq_len``; train / valid / test."""
    if seq_len < 1:
        raise GMError(f"seq_len must be at least 1, got {seq_len}.")
    arrays, meta = ptb_arrays(data_dir, source_dir)
    src = meta["source"]
    chars = {s: int(len(a)) for s, a in arrays.items()}
    for s, n in chars.items():
        if src["sentences"][s] == PTB_SENTENCES[s] and n != PTB_CHARS[s]:
            warnings.warn(
                f"ptb-char {s} has {n} characters, not the {PTB_CHARS[s]} of the standard "
                f"Penn Treebank files; check the source.",
                stacklevel=2,
            )
    splits = {s: windows(arrays[s], seq_len, f"ptb-char {s}") for s in ("train", "valid", "test")}
    return make_dataset(
        "ptb-char",
        "sequence",
        splits,
        vocab_size=len(src["alphabet"]),
        meta={
            "alphabet": src["alphabet"],
            "seq_len": seq_len,
            "characters": chars,
            "sentences": src["sentences"],
            "source": src.get("folder"),
            "provenance": provenance(meta),
        },
    )


def text_file(
    path: str, data_dir: str | None = None, seq_len: int = 100, test_fraction: float = 0.1
) -> LabelledDataset:
    """Any UTF-8 text file (``text:FILE``): the first 1 - ``test_fraction`` of its characters
    are ``train`` and the rest ``test`` (contiguous, not shuffled); windows of ``seq_len``."""
    import datasets

    f = Path(path).expanduser()
    if not f.is_file():
        raise GMError(f"text:{path} is not a file.")
    if seq_len < 1 or not 0 < test_fraction < 1:
        raise GMError(
            f"need seq_len >= 1 and 0 < test_fraction < 1, got {seq_len} and {test_fraction}."
        )
    try:
        ds = datasets.load_dataset(
            "text", data_files=[str(f)], split="train", streaming=True, sample_by="document"
        )
        text = "".join(r["text"] for r in ds)
    except UnicodeDecodeError as err:
        raise GMError(f"{f} is not UTF-8 text ({err}).") from None
    except Exception as err:  # noqa: BLE001
        raise GMError(f"could not read {f} ({type(err).__name__}: {err}).") from None
    if not text:
        raise GMError(f"{f} is empty.")
    # a binary file can decode as UTF-8 (all bytes < 128); text has almost no control codes
    control = sum(text.count(c) for c in set(text) if ord(c) < 32 and c not in "\t\n\r\f")
    if "\0" in text or control > len(text) // 100:
        raise GMError(
            f"{f} does not look like text ({control} of its {len(text)} characters are "
            "control codes); text:FILE takes a UTF-8 text file."
        )
    alphabet = "".join(sorted(set(text)))
    codes = encode(text, alphabet)
    cut = int(round(len(codes) * (1 - test_fraction)))
    splits = {
        "train": windows(codes[:cut], seq_len, f"the train part of {f}"),
        "test": windows(codes[cut:], seq_len, f"the test part of {f}"),
    }
    return make_dataset(
        f"text:{path}",
        "sequence",
        splits,
        vocab_size=len(alphabet),
        meta={
            "alphabet": alphabet,
            "seq_len": seq_len,
            "file": str(f),
            "characters": {"train": cut, "test": len(codes) - cut},
        },
    )
