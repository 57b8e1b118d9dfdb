"""Train a small neural network on scikit-learn's bundled digits data (nothing is downloaded).

A real, if small, training script that follows herd's environment contract, so the same file runs locally
(``ml-jobs run examples/digits-sweep.yaml --local``) and in the cluster:

- reads its parameters from ``$PARAMS_FILE`` (``hidden``, ``alpha``, ``lr``; defaults when run by hand);
- trains epoch by epoch and checkpoints to ``$CHECKPOINT_DIR`` after each, so a retried run resumes where the
  failed attempt stopped;
- writes the model to ``$RESULTS_DIR/model.pkl`` and its metrics to ``$METRICS_FILE``.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

DEFAULTS = {"hidden": 64, "alpha": 1e-4, "lr": 1e-3, "epochs": 30, "seed": 0}


def main() -> int:
    params = dict(DEFAULTS)
    if "PARAMS_FILE" in os.environ:
        params.update(json.loads(Path(os.environ["PARAMS_FILE"]).read_text()))
    results = Path(os.environ.get("RESULTS_DIR", "digits-results"))
    checkpoints = Path(os.environ.get("CHECKPOINT_DIR", results / "checkpoint"))
    metrics_file = Path(os.environ.get("METRICS_FILE", results / "metrics.json"))
    checkpoints.mkdir(parents=True, exist_ok=True)

    x, y = load_digits(return_X_y=True)
    x = x / 16.0  # pixel intensities are 0..16
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    classes = np.unique(y)

    checkpoint = checkpoints / "model.pkl"
    if checkpoint.exists():
        with checkpoint.open("rb") as f:
            model, epoch = pickle.load(f)
        print(f"resuming from {checkpoint} after epoch {epoch}", flush=True)
    else:
        model = MLPClassifier(
            hidden_layer_sizes=(int(params["hidden"]),),
            alpha=float(params["alpha"]),
            learning_rate_init=float(params["lr"]),
            batch_size=64,
            random_state=int(params["seed"]),
        )
        epoch = 0

    started = time.perf_counter()
    rng = np.random.default_rng(int(params["seed"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        while epoch < int(params["epochs"]):
            order = rng.permutation(len(x_train))
            model.partial_fit(x_train[order], y_train[order], classes=classes)
            epoch += 1
            tmp = checkpoint.with_suffix(".tmp")
            with tmp.open("wb") as f:
                pickle.dump((model, epoch), f)
            tmp.replace(checkpoint)  # a retry never sees a half-written checkpoint
            if epoch % 10 == 0:
                print(f"epoch {epoch}: val accuracy {accuracy_score(y_val, model.predict(x_val)):.4f}", flush=True)

    with (results / "model.pkl").open("wb") as f:
        pickle.dump(model, f)
    metrics = {
        "val_accuracy": float(accuracy_score(y_val, model.predict(x_val))),
        "train_accuracy": float(accuracy_score(y_train, model.predict(x_train))),
        "val_log_loss": float(log_loss(y_val, model.predict_proba(x_val), labels=classes)),
        "epochs": epoch,
        "train_seconds": round(time.perf_counter() - started, 3),
    }
    metrics_file.write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
