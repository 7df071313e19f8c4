"""Peak memory of scoring the 10,000 MNIST test images with each image auto-encoder.

    python benchmarks/scoring_memory.py [--epochs 1] [--train 2000]

Each detector is fitted on the first ``--train`` images (a short fit: memory, not quality,
is measured), saved, then loaded in a fresh process that reads all 10,000 images and calls
``anomaly_score`` once. The table gives that process's resident memory before scoring (the
interpreter, torch, the data and the model), its peak while scoring (Linux's VmHWM, reset
just before the call) and the difference, the rows per inference batch the 256 MiB
activation budget chose (``anomalia.detectors._torch.rows_within``), and the scores' bytes.
Writes ``benchmarks/results/scoring_memory.csv`` when every detector has run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
DETECTORS = {
    "conv-ae": {},
    "vae": {"bottleneck": 16},
    "vqvae": {},
    "disentangle": {},
}

CHILD = r"""
import json, sys
from pathlib import Path
import anomalia
from anomalia.datasets import read_mnist
from anomalia.detectors._torch import rows_within

def status(field):  # kiB, from /proc/self/status
    lines = Path("/proc/self/status").read_text().splitlines()
    line = next(s for s in lines if s.startswith(field))
    return int(line.split()[1])

folder = Path(sys.argv[2])
X, _ = read_mnist(folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz")
det = anomalia.load(sys.argv[1])
det.anomaly_score(X[:2])  # warm up: the first call measures the batch size
before = status("VmRSS:")
Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
scores = det.anomaly_score(X)
peak = status("VmHWM:")
rows = rows_within(det.module_, tuple(det.image_shape_))
print(json.dumps({"before_mib": before / 1024, "peak_mib": peak / 1024,
                  "rows_per_batch": rows, "n": len(scores)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train", type=int, default=2000)
    args = parser.parse_args()
    from anomalia import make_detector
    from anomalia.datasets import read_mnist

    X, _ = read_mnist(MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, params in DETECTORS.items():
            det = make_detector(name, epochs=args.epochs, random_state=0, **params)
            det.fit(X[: args.train])
            path = Path(tmp) / f"{name}.anomalia"
            det.save(path)
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(path), str(MNIST)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            got = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(
                {
                    "detector": name,
                    "images": got["n"],
                    "rows_per_batch": got["rows_per_batch"],
                    "before_scoring_mib": round(got["before_mib"]),
                    "peak_mib": round(got["peak_mib"]),
                    "scoring_adds_mib": round(got["peak_mib"] - got["before_mib"]),
                }
            )
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    out = ROOT / "benchmarks" / "results" / "scoring_memory.csv"
    table.to_csv(out, index=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
