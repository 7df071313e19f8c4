"""Loads and scores the model files listed in a jobs file, reporting each on stdout.

Run by tests/test_hostile_models.py in a subprocess, so that a crash (a signal) or a hang
is caught by the parent and blamed on the file being processed. Each line of the jobs
file (the one argument) is ``MODEL_PATH<TAB>DATA_PATH``; for each the worker prints
``START`` before and, after, ``DONE<TAB>ok``, ``DONE<TAB>refused<TAB>message`` (an
anomalia error) or ``DONE<TAB>BUG<TAB>exception type: message`` (anything else), then the
peak RSS in MiB.
"""

from __future__ import annotations

import resource
import sys
import warnings

import numpy as np

import anomalia
from anomalia.errors import AnomaliaError


def main() -> None:
    warnings.simplefilter("ignore")
    with open(sys.argv[1]) as fh:
        lines = fh.readlines()
    for line in lines:
        model, data = line.rstrip("\n").split("\t")
        print("START", flush=True)
        try:
            det = anomalia.load(model)
            X = np.load(data)
            scores = det.anomaly_score(X)
            det.predict(X)
            assert scores.shape == (len(X),)
            outcome = "ok"
        except AnomaliaError as exc:
            outcome = "refused\t" + str(exc).replace("\n", " ")[:300]
        except Exception as exc:  # reported to the parent as a bug
            outcome = f"BUG\t{type(exc).__name__}: {str(exc)[:300]}".replace("\n", " ")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"DONE\t{outcome}\t{rss}", flush=True)


if __name__ == "__main__":
    main()
