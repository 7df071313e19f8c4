"""Speech from espeak-ng: voice conversion, phonetic codes and audio anomalies.

    OMP_NUM_THREADS=1 python benchmarks/speech.py [--sentences 24] [--epochs 10]

Data. ``--sentences`` Debian package summaries (../shared/datasets/debian-descriptions,
field ``summary``; 20-70 characters of plain text, sampled with seed 0), each spoken by
espeak-ng in six voices (``TRAIN_VOICES``) and three more held out (``UNSEEN_VOICES``),
as 22 050 Hz wav files and 80-band log-mel spectrograms (11.6 ms frames; made at run time in
a temporary folder, see :func:`anomalia.speech.speak`). Three quarters of the sentences train,
the rest test: no test sentence is heard in training.

1. Conversion. ``disentangle`` models (KL weight 0.05, style vector of 16) trained on
   32-frame segments of the training utterances (reconstruction only), in two layouts
   (:func:`mel_segments`): "1-D", the 80 mel bands as channels of a 1 x 32 strip
   (convolutions over time, instance normalisation per band over time, as AdaIN-VC), and
   "2-D", 80 x 32 grey images. For each test sentence and ordered pair of training
   voices (source, target): the source utterance converted with the style of the target
   voice speaking *another* test sentence (one-shot: the target's words are never the
   source's). A speaker classifier (logistic regression on :func:`speaker_features`,
   trained on the real training utterances) names the voice of each converted
   spectrogram: share named as the target (chance 1/6) and as the source. Rows: the
   unconverted source (the no-conversion baseline), the model's reconstruction (own
   style), the conversion; the last row passes 12 conversions of the 1-D model through
   Griffin-Lim (16 iterations) and reads the waveform back. DTW distance: mean frame
   distance (dB) along the DTW path to the target voice speaking the *same* sentence
   (parallel ground truth).
2. Codes. A dense VQ-VAE (one code per frame, ``N_CODES`` codes) and k-means with as many
   clusters on 10,000 training frames (sampled) (each utterance's mean log-mel subtracted per band);
   on the test frames: codebook perplexity, purity and NMI of the codes against
   espeak-ng's phoneme of each frame, and code -> phoneme accuracy (each code mapped to
   its most common phoneme on the training frames; chance = the most common phoneme).
   espeak-ng gives no phoneme timings for its own voices, so frame labels spread each
   utterance's phonemes evenly over its voiced frames (:func:`frame_labels`): an
   approximate alignment that caps every score here.
3. Anomalies. A ``conv-ae`` on the training segments scores test utterances (mean segment
   score): normal = training voices, anomalies = unseen voices, white noise at 10 dB SNR,
   clipping at 10 % of the peak. ROC-AUC, against k-NN on the speaker features.

Writes ``benchmarks/results/speech_{conversion,codes,anomalies}.csv`` and
``benchmarks/results/speech_conversion.png`` (spectrograms: source, target, conversion).
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import normalized_mutual_info_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from anomalia import make_detector, speech
from anomalia.datasets import data_dir
from anomalia.plots import save_figure
from anomalia.represent import perplexity

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TRAIN_VOICES = ("en+m1", "en+m3", "en+m5", "en+f1", "en+f3", "en+f5")
UNSEEN_VOICES = ("en+m2", "en+f4", "en+croak")
FRAMES = 32
N_CODES = 48
N_GL = 12


def debian_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` package summaries of 20-70 characters of letters, digits and simple punctuation."""
    path = data_dir() / "debian-descriptions" / "descriptions.jsonl.gz"
    ok = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.-()'")
    with gzip.open(path, "rt") as f:
        summaries = {json.loads(line)["summary"].strip() for line in f}
    pool = sorted(s for s in summaries if 20 <= len(s) <= 70 and set(s) <= ok)
    picks = np.random.default_rng(seed).choice(len(pool), n, replace=False)
    return [pool[i] for i in picks]


def segments(utts, layout="image") -> np.ndarray:
    return np.concatenate([speech.mel_segments(u.mel, FRAMES, layout=layout) for u in utts])


#: name -> (segment layout, disentangle parameters)
VC_MODELS = {
    "1-D (bands as channels)": ("bands", {"channels": (64, 64), "content_channels": 16}),
    "2-D (spectrogram image)": ("image", {"channels": (16, 32), "content_channels": 4}),
}


def conversion(train, test, clf, epochs, seed):
    voices = list(TRAIN_VOICES)
    by = {(u.sentence, u.voice): u for u in test}
    sents = sorted({u.sentence for u in test})
    table, fit_seconds, examples = [], {}, []
    for model_name, (layout, params) in VC_MODELS.items():
        det = make_detector(
            "disentangle",
            **params,
            style_dim=16,
            kl_weight=0.05,
            epochs=epochs,
            patience=None,
            random_state=seed,
        )
        t0 = time.perf_counter()
        det.fit(segments(train, layout))
        fit_seconds[model_name] = time.perf_counter() - t0
        rows = {"source (no conversion)": [], "reconstruction (own style)": [], "conversion": []}
        for k, s in enumerate(sents):
            other = sents[(k + 1) % len(sents)]  # the target speaks another sentence
            for a in voices:
                src = by[s, a].mel
                recon = speech.convert(det, src, src)
                for b in voices:
                    if a == b:
                        continue
                    conv = speech.convert(det, src, by[other, b].mel)
                    truth = by[s, b].mel
                    for name, mel in zip(rows, (src, recon, conv), strict=True):
                        rows[name].append((a, b, mel, speech.dtw_distance(mel, truth)))
                    if layout == "bands":
                        examples.append((s, a, b, conv))
        for name, items in rows.items():
            if name.startswith("source") and table:
                continue  # the same for every model
            pred = clf.predict(np.array([speech.speaker_features(m) for _, _, m, _ in items]))
            sources, targets = (np.array([item[i] for item in items]) for i in (0, 1))
            table.append(
                {
                    "model": "-" if name.startswith("source") else model_name,
                    "spectrogram": name,
                    "pairs": len(items),
                    "named target %": 100 * np.mean(pred == targets),
                    "named source %": 100 * np.mean(pred == sources),
                    "DTW dB to target same sentence": np.mean([d for *_, d in items]),
                }
            )
    rng = np.random.default_rng(seed)
    # a subset through Griffin-Lim and back
    picks = rng.choice(len(examples), N_GL, replace=False)
    feats, hits_t, hits_s = [], [], []
    for i in picks:
        s, a, b, conv = examples[i]
        mel = speech.log_mel(speech.mel_to_audio(conv, n_iter=16))
        feats.append(speech.speaker_features(mel))
        hits_t.append(b)
        hits_s.append(a)
    pred = clf.predict(np.array(feats))
    table.append(
        {
            "model": next(iter(VC_MODELS)),
            "spectrogram": "conversion -> Griffin-Lim wav",
            "pairs": N_GL,
            "named target %": 100 * np.mean(pred == np.array(hits_t)),
            "named source %": 100 * np.mean(pred == np.array(hits_s)),
            "DTW dB to target same sentence": np.nan,
        }
    )
    s, a, b, conv = next(e for e in examples if e[1:3] == (TRAIN_VOICES[0], TRAIN_VOICES[4]))
    figure = (by[s, a].mel, by[s, b].mel, conv, a, b, by[s, a].text)
    return pd.DataFrame(table), fit_seconds, figure


def frames_of(utts):
    """Frames (mean log-mel per band removed per utterance) and their phoneme labels."""
    X = [u.mel - u.mel.mean(axis=1, keepdims=True) for u in utts]
    y = [speech.frame_labels(u.mel, u.phonemes) for u in utts]
    return np.concatenate(X, axis=1).T, np.concatenate(y)


def codes(train, test, epochs, seed, max_frames=10000):
    Xtr, ytr = frames_of(train)
    Xte, yte = frames_of(test)
    keep = np.random.default_rng(seed).permutation(len(Xtr))[:max_frames]
    Xtr, ytr = Xtr[keep], ytr[keep]
    vq = make_detector(
        "vqvae",
        n_codes=N_CODES,
        n_latents=1,
        code_dim=16,
        hidden=(128, 64),
        epochs=epochs,
        patience=None,
        random_state=seed,
    ).fit(Xtr)
    scaler = StandardScaler().fit(Xtr)
    km = KMeans(N_CODES, n_init=1, random_state=seed).fit(scaler.transform(Xtr))
    out = []
    chance = pd.Series(yte).value_counts(normalize=True).iloc[0]
    for name, ctr, cte in (
        ("VQ-VAE", vq.codes(Xtr)[:, 0], vq.codes(Xte)[:, 0]),
        ("k-means", km.labels_, km.predict(scaler.transform(Xte))),
    ):
        mapping = pd.Series(ytr).groupby(ctr).agg(lambda s: s.value_counts().index[0])
        guess = mapping.reindex(cte).fillna(pd.Series(ytr).value_counts().index[0]).to_numpy()
        out.append(
            {
                "codes": name,
                "clusters": N_CODES,
                "used": len(np.unique(cte)),
                "perplexity": perplexity(np.bincount(cte, minlength=N_CODES)),
                "purity": speech.purity(cte, yte),
                "NMI": normalized_mutual_info_score(yte, cte),
                "phoneme acc %": 100 * np.mean(guess == yte),
                "chance %": 100 * chance,
            }
        )
    return pd.DataFrame(out), len(Xtr), len(Xte), len(np.unique(ytr))


def corrupt(audio, kind, rng):
    if kind == "noise 10 dB":
        power = np.mean(audio**2)
        return audio + rng.normal(0, np.sqrt(power / 10), audio.shape)
    peak = np.abs(audio).max() * 0.1
    return np.clip(audio, -peak, peak) / 0.1


def anomalies(train, test, unseen, epochs, seed):
    det = make_detector(
        "conv-ae", channels=(16, 32), epochs=epochs, patience=None, random_state=seed
    ).fit(segments(train))
    knn = make_detector("knn").fit(np.array([speech.speaker_features(u.mel) for u in train]))
    rng = np.random.default_rng(seed)
    normal = [u.mel for u in test]
    groups = {"unseen voices": [u.mel for u in unseen]}
    for kind in ("noise 10 dB", "clipping 10 %"):
        groups[kind] = [
            speech.log_mel(corrupt(speech.read_wav(u.wav), kind, rng)) for u in test[::2]
        ]

    def ae_scores(mels):
        return np.array([det.anomaly_score(speech.mel_segments(m, FRAMES)).mean() for m in mels])

    def knn_scores(mels):
        return knn.anomaly_score(np.array([speech.speaker_features(m) for m in mels]))

    n_ae, n_knn = ae_scores(normal), knn_scores(normal)
    rows = []
    for name, mels in groups.items():
        y = np.r_[np.zeros(len(normal)), np.ones(len(mels))]
        rows.append(
            {
                "anomaly": name,
                "normal / anomalous utterances": f"{len(normal)} / {len(mels)}",
                "conv-ae ROC-AUC": roc_auc_score(y, np.r_[n_ae, ae_scores(mels)]),
                "k-NN speaker features ROC-AUC": roc_auc_score(y, np.r_[n_knn, knn_scores(mels)]),
            }
        )
    return pd.DataFrame(rows)


def plot_conversion(source, target, converted, a, b, text):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6.4), dpi=110, layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    lo = max(source.max(), target.max()) - 80
    panels = (
        (source, f"source: {a}"),
        (target, f"target voice {b}, same sentence (never seen by the model)"),
        (converted, f"conversion: content of {a}, style of {b} from another sentence"),
    )
    for ax, (mel, title) in zip(axes, panels, strict=True):
        ax.set_facecolor("black")  # past the end of a shorter utterance: silence
        im = ax.imshow(mel, origin="lower", aspect="auto", vmin=lo, vmax=lo + 80, cmap="magma")
        ax.set_title(title, fontsize="medium", loc="left")
        ax.set_ylabel("mel band")
    axes[-1].set_xlabel(f"frame ({1000 * speech.HOP_LENGTH / speech.SAMPLE_RATE:.1f} ms)")
    fig.colorbar(im, ax=axes, label="dB", shrink=0.6)
    fig.suptitle(f'"{text}"', fontsize="medium")
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    texts = debian_sentences(args.sentences, args.seed)
    n_train = args.sentences * 3 // 4
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        utts = speech.speak(texts, TRAIN_VOICES + UNSEEN_VOICES, cache_dir=tmp)
        made_s = time.perf_counter() - t0
        seen = [u for u in utts if u.voice in TRAIN_VOICES]
        train = [u for u in seen if u.sentence < n_train]
        test = [u for u in seen if u.sentence >= n_train]
        unseen = [u for u in utts if u.voice in UNSEEN_VOICES and u.sentence >= n_train]
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        clf.fit([speech.speaker_features(u.mel) for u in train], [u.voice for u in train])
        real_acc = 100 * clf.score(
            [speech.speaker_features(u.mel) for u in test], [u.voice for u in test]
        )
        conv, fit_s, fig = conversion(train, test, clf, args.epochs, args.seed)
        code_table, n_fr_tr, n_fr_te, n_ph = codes(train, test, args.epochs, args.seed)
        anom = anomalies(train, test, unseen, args.epochs, args.seed)
        RESULTS.mkdir(parents=True, exist_ok=True)
        save_figure(plot_conversion(*fig), RESULTS / "speech_conversion.png")
    conv.to_csv(RESULTS / "speech_conversion.csv", index=False)
    code_table.to_csv(RESULTS / "speech_codes.csv", index=False)
    anom.to_csv(RESULTS / "speech_anomalies.csv", index=False)
    n_seg = sum(-(-u.mel.shape[1] // FRAMES) for u in train)
    print(
        f"{args.sentences} sentences ({n_train} train, {args.sentences - n_train} test) x "
        f"{len(TRAIN_VOICES)} voices (+{len(UNSEEN_VOICES)} unseen); espeak-ng + log-mel "
        f"{made_s:.0f} s; {n_seg} training segments of {speech.N_MELS} x {FRAMES}\n"
    )
    fits = ", ".join(f"{k} {v:.0f} s" for k, v in fit_s.items())
    print(
        f"## Voice conversion (disentangle, {args.epochs} epochs: {fits}); speaker "
        f"classifier on real test utterances: {real_acc:.1f} % (chance {100 / 6:.1f} %)\n"
    )
    print(conv.to_markdown(index=False, floatfmt=".1f"))
    print(
        f"\n## Phonetic codes ({n_fr_tr} training frames, {n_fr_te} test frames, "
        f"{n_ph} phoneme labels incl. silence)\n"
    )
    print(code_table.to_markdown(index=False, floatfmt=".3f"))
    print("\n## Audio anomalies (utterance = mean segment score)\n")
    print(anom.to_markdown(index=False, floatfmt=".3f"))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
