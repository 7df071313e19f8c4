"""The README runs as written: every shell command and Python block, in README order.

Every ```bash / ```sh / ```console command and every ```python block of README.md runs, in
the order the README shows them, in one temporary directory, so a chain (fit -> calibrate ->
score -> evaluate) breaks the test when one link breaks. The files the README names as the
user's own (``train.csv``, ``images/train/``, ...) are generated small when a command needs
them and they do not exist yet: see ``PLACEHOLDERS``. A new README line runs without editing
this file unless it names a new kind of file; then the test says how to add one.

``anomalia ...`` lines run in this process through Typer's runner (seconds, not an
interpreter start per line); lines with pipes, redirections or variables run in bash with an
``anomalia`` wrapper on PATH.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

import anomalia
from anomalia import datasets
from anomalia.cli.app import app

README = Path(__file__).resolve().parents[1] / "README.md"
SHELL_LANGS = {"bash", "sh", "shell", "console"}

#: README lines that do not run here: pattern (a regular expression searched in the command
#: or Python block) -> why. `test_every_skip_still_matches` fails when a pattern matches
#: nothing, so this list cannot outlive the lines it excuses.
SKIPS = {
    r"^make (demo|test)": "sets up .venv and installs every extra (make test runs the suite)",
    r"^make docs": "installs the docs extra and builds the site (tests/test_docs.py builds it)",
    r"^pip install": "installs packages",
    r"^\.venv/bin/python benchmarks/": "benchmarks on the shared real data take minutes",
    r"^anomalia serve": "starts a server that runs until stopped (tests/test_serve.py)",
    r"^curl ": "talks to the server of 'anomalia serve'",
    r"^anomalia bench (--out|--json|-d)": "every ADBench dataset: minutes to hours",
    r"^anomalia bench --summary-only": "reads the full run's results.csv (test_bench.py runs it)",
    r"--engine (dask|spark)": "starts a local Dask or Spark cluster (tests/test_dask.py, ...)",
    r"import anomalia\.dask": "starts a local Dask cluster (tests/test_dask.py)",
    r"^anomalia demo": "nine detectors on the full breast-cancer set; what make demo runs",
    r"^\.venv/bin/jupyter execute": "the whole notebook, minutes: tests/test_notebook.py runs it",
}


# -- the README, cut into commands ---------------------------------------------------------
@dataclass
class Item:
    kind: str  # "shell" or "python"
    line: int  # 1-based line in README.md
    text: str

    @property
    def id(self) -> str:
        return f"line{self.line}-{self.text.split()[0] if self.text.split() else ''}"


def readme_items() -> list[Item]:
    """Shell commands (continuations joined, comment lines dropped) and Python blocks."""
    items: list[Item] = []
    lines = README.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        lang, start, i = fence.group(1).lower(), i + 1, i + 1
        while i < len(lines) and not lines[i].startswith("```"):
            i += 1
        body = lines[start:i]
        i += 1
        if lang == "python":
            items.append(Item("python", start + 1, "\n".join(body)))
        elif lang in SHELL_LANGS:
            command, first = "", None
            for n, raw in enumerate(body, start + 1):
                text = raw.strip()
                if lang == "console":
                    if not text.startswith("$ ") and not command:
                        continue  # output lines of a console session
                    text = text.removeprefix("$ ")
                if not command and (not text or text.startswith("#")):
                    continue
                first = first or n
                if text.endswith("\\"):
                    command += text[:-1] + " "
                    continue
                items.append(Item("shell", first, command + text))
                command, first = "", None
    return items


ITEMS = readme_items()


def skip_reason(item: Item) -> str | None:
    for pattern, reason in SKIPS.items():
        if re.search(pattern, item.text, flags=re.MULTILINE):
            return reason
    return None


# -- placeholders: the user's own files, generated small -----------------------------------
def _card_table(seed: int, n_normal: int = 120, n_anom: int = 8) -> pd.DataFrame:
    """A credit-card-like table: Time, V1..V28, Amount, Class (1 = fraud, far from normal)."""
    rng = np.random.default_rng(seed)
    V = np.vstack([rng.normal(size=(n_normal, 28)), rng.normal(4, 1, size=(n_anom, 28))])
    frame = pd.DataFrame(V, columns=[f"V{i}" for i in range(1, 29)])
    frame.insert(0, "Time", np.sort(rng.uniform(0, 172_800, len(frame))).round())
    frame["Amount"] = rng.gamma(2, 40, len(frame)).round(2)
    frame["Class"] = np.r_[np.zeros(n_normal, int), np.ones(n_anom, int)]
    return frame.sample(frac=1, random_state=seed).reset_index(drop=True)


def card_csv(seed: int) -> Callable[[Path], None]:
    return lambda path: _card_table(seed).to_csv(path, index=False)


def new_rows(path: Path) -> None:
    """New, unlabelled rows with an id column."""
    frame = _card_table(7, 7, 1).drop(columns="Class")  # fewer than | head shows
    frame.insert(0, "id", np.arange(1000, 1000 + len(frame)))
    frame.to_csv(path, index=False)


def big_parquet(path: Path) -> None:
    _card_table(8, 600, 20).to_parquet(path, index=False)


def _digit_images(start: int, n: int) -> np.ndarray:
    """(n, 8, 8) uint8 images: scikit-learn's digits scaled to 0..255."""
    from sklearn.datasets import load_digits

    images = load_digits().images[start : start + n]
    return np.round(images * (255 / 16)).astype(np.uint8)


def image_stack(start: int, n: int) -> Callable[[Path], None]:
    return lambda path: np.save(path, _digit_images(start, n))


def image_folder(path: Path) -> None:
    """images/train/ (flat, normal images) and images/test/{good,bad}/ of 8x8 PNGs."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    root = path if path.name != "train" and path.name != "test" else path.parent
    normal, other = images[digits.target == 0], images[digits.target != 0]
    folders = {
        root / "train": normal[:40],
        root / "test" / "good": normal[60:80],
        root / "test" / "bad": other[:10],
    }
    for folder, stack in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(stack):
            Image.fromarray(image).save(folder / f"{i:03d}.png")


def known_classes(path: Path) -> None:
    """Rows of known classes (digits 0-2) with their class in 'digit'."""
    from sklearn.datasets import load_digits

    X, digit = load_digits(return_X_y=True)
    keep = np.flatnonzero(digit < 3)[:150]
    frame = pd.DataFrame(X[keep], columns=[f"p{i}" for i in range(64)])
    frame["digit"] = digit[keep]
    frame.to_csv(path, index=False)


def known_anomalies(path: Path) -> None:
    from sklearn.datasets import load_digits

    X, digit = load_digits(return_X_y=True)
    pd.DataFrame(X[digit == 3][:40], columns=[f"p{i}" for i in range(64)]).to_csv(path, index=False)


def digits_table(path: Path) -> None:
    """The built-in digits' columns, with a class column 'digit' and an id column 'key'."""
    from anomalia import datasets

    ds = datasets.load_dataset("digits")
    frame = ds.X.iloc[:300].copy()
    frame["digit"] = ds.labels[:300]
    frame.insert(0, "key", [f"k{i}" for i in range(len(frame))])
    frame.to_csv(path, index=False)


def summaries_txt(path: Path) -> None:
    """Short sentences of the project's grammar under a header line 'summary'."""
    from anomalia.text import generate

    texts = [s.text for s in generate(60, max_words=8, random_state=0)]
    path.write_text("summary\n" + "\n".join(texts) + "\n")


def package_descriptions(path: Path) -> None:
    """60 made-up Debian-like packages as JSON Lines: package, section, summary, description."""
    import gzip
    import json

    rng = np.random.default_rng(0)
    words = ("python", "library", "json", "parser", "game", "sound", "tool", "image", "data")
    with gzip.open(path, "wt") as fh:
        for i in range(60):
            text = " ".join(rng.choice(words, size=12))
            row = {"package": f"pkg{i}", "section": ["python", "games"][i % 2],
                   "summary": " ".join(text.split()[:4]), "description": text}  # fmt: skip
            fh.write(json.dumps(row) + "\n")


def cli(*args: str) -> Callable[[Path], None]:
    """A file made by an anomalia command (a model the README uses but made elsewhere)."""

    def make(path: Path) -> None:
        for name in input_files(list(args)):
            ensure(name, path.parent)
        res = CliRunner().invoke(app, [*args, "--out", path.name])
        assert res.exit_code == 0, f"making placeholder {path.name}: {res.output}"

    return make


#: A file the README names as the user's own -> how to make a small one (glob patterns;
#: the first match wins). Add a line here when the README names a new kind of file.
PLACEHOLDERS: dict[str, Callable[[Path], None]] = {
    "train.csv": card_csv(0),
    "dev.csv": card_csv(1),
    "test.csv": card_csv(2),
    "data.csv": card_csv(3),
    "creditcard.csv": card_csv(4),
    "mydata.csv": card_csv(5),
    "new_week.csv": card_csv(6),
    "new.csv": new_rows,
    "big.parquet": big_parquet,
    "table.csv": digits_table,
    "known.csv": known_classes,
    "known_anomalies.csv": known_anomalies,
    "images/train/": image_folder,
    "images/test/": image_folder,
    "mnist_train.npy": image_stack(0, 64),
    "train_images.npy": image_stack(0, 64),
    "mnist_test.npy": image_stack(300, 20),
    "images.npy": image_stack(300, 20),
    "content.npy": image_stack(400, 8),
    "style.npy": image_stack(500, 8),
    "descriptions.jsonl.gz": package_descriptions,
    "table_ae.anomalia": cli(
        "fit", "train.csv", "-d", "ae", "-p", "epochs=5", "--label-column", "Class"
    ),
    "rows.codes": cli("compress", "table_ae.anomalia", "test.csv"),
    "summaries.txt": summaries_txt,
    "styles.anomalia": cli("fit", "train_images.npy", "-d", "disentangle", "-p", "epochs=3"),
}

#: Names a README Python block uses as the reader's own data -> a small value.
PY_PLACEHOLDERS: dict[str, Callable[[], object]] = {
    "X_known": lambda: _digits_split()[0],
    "classes": lambda: _digits_split()[1],
    "X_anom": lambda: _digits_split()[2],
    "X_new": lambda: _digits_split()[3],
}


def _digits_split() -> tuple[np.ndarray, ...]:
    """Digits 0-2 known (150 rows), 3 the known anomaly, new rows of 0-9."""
    from sklearn.datasets import load_digits

    X, digit = load_digits(return_X_y=True)
    return X[digit < 3][:150], digit[digit < 3][:150], X[digit == 3][:40], X[-50:]


#: Rows of the built-in ``digits`` the README's commands see (all 1,797: a minute of training).
DIGITS_ROWS = 120


#: Options whose value is a file the command writes (never a placeholder).
OUTPUT_OPTIONS = {"--out", "-o", "--plots", "--plot", ">"}
#: What makes a word a file name.
FILE_SUFFIXES = {
    ".csv", ".parquet", ".npy", ".npz", ".anomalia", ".codes", ".zip", ".png", ".onnx",
    ".arrow", ".feather", ".ipc", ".gz", ".key", ".json", ".pem", ".txt",
}  # fmt: skip


def placeholder_for(name: str) -> Callable[[Path], None] | None:
    for pattern, make in PLACEHOLDERS.items():
        if name == pattern or fnmatch(name, pattern):
            return make
    return None


def ensure(name: str, where: Path) -> None:
    """Make the placeholder file ``name`` under ``where`` unless it exists."""
    path = where / name
    if path.exists():
        return
    make = placeholder_for(name)
    if make is None:
        pytest.fail(
            f"README names {name!r}, which no earlier README line writes and which is no "
            "known placeholder: add a generator for it to PLACEHOLDERS in tests/test_readme.py",
            pytrace=False,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    make(path)


def input_files(words: list[str]) -> list[str]:
    """The words of a command that name files it reads."""
    found, previous = [], ""
    for word in words:
        is_output, previous = previous in OUTPUT_OPTIONS, word
        if is_output or word.startswith("-") or "://" in word or word.startswith("/"):
            continue
        word = word.removeprefix("@")
        if word.endswith("/") or Path(word).suffix.lower() in FILE_SUFFIXES:
            found.append(word)
    return found


# -- running -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Iterator[Path]:
    """One folder for the whole README, with an ``anomalia`` command on PATH for bash."""
    root = tmp_path_factory.mktemp("readme")
    bin_dir = root / ".bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "anomalia"
    wrapper.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -c "from anomalia.cli.app import main; main()" "$@"\n'
    )
    wrapper.chmod(0o755)
    work = root / "work"
    work.mkdir()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: one thread is faster on a shared machine
    with threadpool_limits(1):
        yield work
    torch.set_num_threads(threads)


def run_shell(command: str, work: Path) -> None:
    words = shlex.split(command, comments=True)
    for name in input_files(words):
        ensure(name, work)
    plain = words and words[0] == "anomalia" and not re.search(r"[|<>$;&`]", command)
    if plain:
        res = CliRunner().invoke(app, words[1:], catch_exceptions=False)
        assert res.exit_code == 0, f"exit code {res.exit_code}:\n{res.output}"
        return
    src = str(Path(anomalia.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PATH": f"{work.parent / '.bin'}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }
    res = subprocess.run(
        ["bash", "-o", "pipefail", "-ec", command],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, f"exit code {res.returncode}:\n{res.stdout}\n{res.stderr}"


NAMESPACE: dict[str, object] = {"__name__": "readme"}


def run_python(code: str, work: Path) -> None:
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and placeholder_for(node.value)
        ):
            ensure(node.value, work)
        if isinstance(node, ast.Name) and node.id in PY_PLACEHOLDERS:
            NAMESPACE.setdefault(node.id, PY_PLACEHOLDERS[node.id]())
    try:
        exec(compile(tree, str(README), "exec"), NAMESPACE)
    except NameError as exc:
        pytest.fail(
            f"{exc}: if the README means the reader's own data, add it to PY_PLACEHOLDERS "
            "in tests/test_readme.py",
            pytrace=False,
        )


@pytest.mark.parametrize("item", ITEMS, ids=[item.id for item in ITEMS])
def test_readme(item: Item, workdir: Path, monkeypatch) -> None:
    reason = skip_reason(item)
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(datasets, "load_dataset", _small_builtins(datasets.load_dataset))
    monkeypatch.delenv("ANOMALIA_MODEL_KEY", raising=False)
    if item.kind == "shell":
        run_shell(item.text, workdir)
    else:
        run_python(item.text, workdir)


def _small_builtins(load: Callable) -> Callable:
    """The built-in digits cut to ``DIGITS_ROWS`` rows (a stratified-enough head)."""

    def small(name: str, **kwargs):
        ds = load(name, **kwargs)
        if name != "digits":
            return ds
        rows = slice(0, DIGITS_ROWS)
        return dataclasses.replace(
            ds,
            X=ds.X.iloc[rows],
            y=None if ds.y is None else ds.y[rows],
            labels=None if ds.labels is None else ds.labels[rows],
        )

    return small


def test_every_skip_still_matches() -> None:
    unused = [p for p in SKIPS if not any(re.search(p, i.text, re.MULTILINE) for i in ITEMS)]
    assert not unused, f"SKIPS patterns that match no README line any more: {unused}"


def test_readme_has_commands() -> None:
    kinds = {item.kind for item in ITEMS}
    assert kinds == {"shell", "python"} and len(ITEMS) > 40


def test_an_unknown_file_says_how_to_add_it(tmp_path) -> None:
    assert input_files(["fit", "secret.parquet", "-o", "m.anomalia", "--plots", "p/"]) == [
        "secret.parquet"
    ]
    with pytest.raises(pytest.fail.Exception, match="add a generator for it to PLACEHOLDERS"):
        ensure("secret.parquet", tmp_path)
