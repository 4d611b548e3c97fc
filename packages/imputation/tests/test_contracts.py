"""gm.testing's trainer contract for every model, on core's built-in 2-D toy data."""

from gm.testing import TrainerContract

SMALL = {"batch_size": 16, "mask": "mcar:0.5"}


class TestGPSIAdd(TrainerContract):
    model = "gpsi-add"
    dataset = "mog-grid"
    data_options = {"n": 200}
    overrides = {**SMALL, "hidden": 16, "z_dim": 4}


class TestGPSIJump(TrainerContract):
    model = "gpsi-jump"
    dataset = "mog-grid"
    data_options = {"n": 200}
    overrides = {
        **SMALL,
        "hidden": 16,
        "z_dim": 4,
        "guide_input": "raw",
        "see_mask": True,
        "primary_residual": True,
    }


class TestLSTMAdd(TrainerContract):
    model = "lstm-add"
    dataset = "mog-grid"
    data_options = {"n": 200}
    overrides = {**SMALL, "hidden": 8, "z_dim": 4, "refine_steps": 3}


class TestLSTMJump(TrainerContract):
    model = "lstm-jump"
    dataset = "swiss-roll"
    data_options = {"n": 200}
    overrides = {
        **SMALL,
        "hidden": 8,
        "z_dim": 4,
        "refine_steps": 3,
        "infinite_mixture": False,
        "see_mask": True,
    }


class TestDrawGPS(TrainerContract):
    model = "draw-gps"
    dataset = "circle"
    data_options = {"n": 200}
    overrides = {"batch_size": 16, "hidden": 8, "z_dim": 4, "refine_steps": 3}


class TestVAEImputer(TrainerContract):
    model = "vae-imputer"
    dataset = "mog-grid"
    data_options = {"n": 200}
    overrides = {**SMALL, "hidden": 16, "z_dim": 2}


class TestTemplateMatching(TrainerContract):
    model = "template-matching"
    dataset = "mog-grid"
    data_options = {"n": 200}
    overrides = {**SMALL, "max_templates": 40}
