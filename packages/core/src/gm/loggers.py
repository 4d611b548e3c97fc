"""Experiment loggers: each metrics row of a run goes to ``metrics.jsonl`` and to every
logger named by ``--report-to`` (registered through the ``gm_loggers`` hook, so W&B can
be a third-party plugin). TensorBoard and MLflow are built in (each an extra of gm-core).

A logger is a class ``Logger(run: Path, record: dict)`` with ``log(step, row)`` and
``close()``; ``record`` is the run's ``config.json`` content (model, dataset, config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from gm import plugins
from gm.errors import GMError


class Logger(Protocol):
    def log(self, step: int, row: dict[str, float]) -> None: ...

    def close(self) -> None: ...


def open_loggers(names: tuple[str, ...] | list[str], run: Path, record: dict[str, Any]) -> list:
    """One logger per name (unknown names: one error with the close names)."""
    specs = [plugins.get("loggers", n) for n in names]  # all checked before any opens
    return [spec.load()(Path(run), record) for spec in specs]


class TensorBoard:
    """Scalars under ``RUN/tensorboard`` (``tensorboard --logdir RUN``)."""

    def __init__(self, run: Path, record: dict[str, Any]):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise GMError(
                "--report-to tensorboard needs the tensorboard package: "
                "pip install 'gm-core[tensorboard]'."
            ) from None
        self.writer = SummaryWriter(str(Path(run) / "tensorboard"))
        self.writer.add_text(
            "config", "\n".join(f"    {k} = {v!r}" for k, v in record.get("config", {}).items())
        )

    def log(self, step: int, row: dict[str, float]) -> None:
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class MLflow:
    """One MLflow run per gm run: the config as params, every row as metrics at its step.

    The tracking store is ``MLFLOW_TRACKING_URI`` (a server, or ``file:/path``), else a
    local file store in ``RUN/mlruns`` (gm writes only inside the run folder); the
    experiment is ``MLFLOW_EXPERIMENT_NAME``, else ``gm``. A resumed gm run logs into the
    MLflow run it started (found by its ``gm.run`` tag), so its curves stay one."""

    def __init__(self, run: Path, record: dict[str, Any]):
        import os

        try:
            from mlflow.entities import Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise GMError(
                "--report-to mlflow needs the mlflow-skinny package: pip install 'gm-core[mlflow]'."
            ) from None
        folder = Path(run).resolve()
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (folder / "mlruns").as_uri()
        if uri.startswith("file:") or "://" not in uri:
            # MLflow 3 keeps the local file store (offline, no server) behind this switch
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "gm"
        found = client.get_experiment_by_name(name)
        experiment = found.experiment_id if found else client.create_experiment(name)
        earlier = client.search_runs(
            [experiment], filter_string=f"tags.`gm.run` = '{folder}'", max_results=1
        )
        if earlier:
            self.run_id = earlier[0].info.run_id
            client.update_run(self.run_id, status="RUNNING")
            return
        tags = {"gm.run": str(folder), "gm.model": str(record.get("gm_model", "")),
                "gm.dataset": str(record.get("dataset", ""))}  # fmt: skip
        self.run_id = client.create_run(experiment, run_name=folder.name, tags=tags).info.run_id
        params = [Param(k, str(v)[:500]) for k, v in record.get("config", {}).items()]
        client.log_batch(self.run_id, params=params)

    def log(self, step: int, row: dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), now, step)
            for k, v in row.items()
            if k != "step" and isinstance(v, (int, float))
        ]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)
