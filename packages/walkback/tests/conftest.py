import sys
from pathlib import Path

import pytest
import torch

import gm
from gm import plugins
from gm.specs import DatasetSpec

sys.path.insert(0, str(Path(__file__).parent))  # wb_testdata
torch.set_num_threads(1)


class _TestDatasets:
    """A test-only plugin: the tiny image dataset of wb_testdata."""

    @gm.hookimpl
    def gm_datasets(self):
        return [
            DatasetSpec(
                "wb-tiny-images",
                "wb_testdata:tiny_images",
                "8x8 bars (tests)",
                modality="image",
                shape=(1, 8, 8),
            )
        ]


@pytest.fixture(autouse=True, scope="session")
def _register_test_datasets():
    pm = plugins.manager()
    if not pm.has_plugin("wb-tests"):
        pm.register(_TestDatasets(), name="wb-tests")
        plugins.registry.cache_clear()
    yield
