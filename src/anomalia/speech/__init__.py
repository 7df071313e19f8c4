"""Speech made on the machine: espeak-ng sentences in many voices, as log-mel spectrograms.

`espeak-ng <https://github.com/espeak-ng/espeak-ng>`_ (Debian package ``espeak-ng``) speaks
any sentence in many voices, so the same sentence exists in every voice: parallel ground truth
for voice conversion, and phoneme transcriptions for judging discrete codes. This module

- synthesises sentences x voices to wav files and log-mel spectrograms, cached on disk
  (:func:`speak`, :func:`synthesize`), and transcribes them to phonemes
  (:func:`phonemes`, :func:`parse_phonemes`, :func:`frame_labels`);
- cuts spectrograms into fixed-size segments, the "images" the conv detectors take, and
  joins them back (:func:`mel_segments`, :func:`join_segments`), and turns a log-mel
  spectrogram back into a waveform by Griffin-Lim (:func:`mel_to_audio`);
- converts the voice of an utterance with a ``disentangle`` model (:func:`convert`): the
  content codes of the source's segments decoded with the target's mean style vector;
- measures: DTW distance between spectrograms (:func:`dtw_distance`), speaker features
  (:func:`speaker_features`) and the purity of codes against labels (:func:`purity`).

It needs the ``audio`` extra (``pip install 'anomalia[audio]'``: soundfile and librosa) and
the ``espeak-ng`` program for synthesis; :class:`SpeechError` says which one is missing.

All spectrograms here are ``(n_mels, frames)`` arrays in dB (``10 log10`` of mel power), at
espeak-ng's 22 050 Hz, ``N_FFT``-sample windows and ``HOP_LENGTH``-sample hops (11.6 ms).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import AnomaliaError, DataError

if TYPE_CHECKING:
    from ..detectors.disentangle import DisentangleDetector

__all__ = [
    "HOP_LENGTH",
    "N_FFT",
    "N_MELS",
    "SAMPLE_RATE",
    "SENTENCES",
    "SILENCE",
    "SpeechError",
    "Utterance",
    "convert",
    "dtw_distance",
    "espeak_available",
    "frame_labels",
    "join_segments",
    "log_mel",
    "mel_segments",
    "mel_to_audio",
    "parse_phonemes",
    "phonemes",
    "purity",
    "read_wav",
    "speak",
    "speaker_features",
    "synthesize",
]

SAMPLE_RATE = 22050
"""Sample rate of espeak-ng's wav output and of every spectrogram here, in Hz."""
N_FFT = 1024
"""STFT window, in samples (46 ms)."""
HOP_LENGTH = 256
"""STFT hop, in samples (11.6 ms): one spectrogram frame."""
N_MELS = 80
"""Mel bands of every spectrogram."""
SILENCE = "_"
"""Label :func:`frame_labels` gives to silent frames."""
_FLOOR_DB = -80.0  # log-mel of silence: 10 log10(1e-8)

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A small tool that finds odd rows in large tables.",
    "Please call me back after the meeting tomorrow.",
    "She sells sea shells by the sea shore.",
    "Seven green bottles were standing on the wall.",
    "The library keeps every model file without pickle.",
    "We measured the error on a thousand test images.",
    "Bright music played while the children were dancing.",
)
"""Built-in sentences, for tests and examples (the benchmark uses Debian package summaries)."""

_VOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+\-]{0,39}")
_MAX_TEXT = 1000
_STRESS = str.maketrans("", "", "',;%=")  # espeak-ng -x stress and syllable marks


class SpeechError(AnomaliaError):
    """espeak-ng or the ``audio`` extra is missing, or espeak-ng failed."""


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` program is on ``PATH``."""
    return shutil.which("espeak-ng") is not None


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechError(
            "espeak-ng is not installed; install it (Debian/Ubuntu: apt-get install espeak-ng)"
        )
    return exe


def _audio_libs() -> tuple[Any, Any]:
    try:
        import librosa
        import soundfile
    except ImportError:
        raise SpeechError(
            "speech needs the audio extra: pip install 'anomalia[audio]' (soundfile, librosa)"
        ) from None
    return librosa, soundfile


def _check_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"text to speak must be a non-empty string, got {text!r}")
    if len(text) > _MAX_TEXT:
        raise DataError(f"text to speak has {len(text)} characters; at most {_MAX_TEXT}")
    if any(ord(ch) < 32 and ch not in "\t" for ch in text):
        raise DataError(f"text to speak has control characters (newlines too): {text!r}")
    return text


def _check_voice(voice: object) -> str:
    if not isinstance(voice, str) or not _VOICE.fullmatch(voice):
        raise DataError(
            f"voice must be an espeak-ng voice name such as 'en+m1' (letters, digits, "
            f"'+', '-', '_'), got {voice!r}"
        )
    return voice


def _run_espeak(args: list[str], text: str, timeout: float) -> str:
    """Run espeak-ng with ``args`` (a list, no shell), the text on stdin; return stdout."""
    try:
        done = subprocess.run(
            [_espeak(), *args, "--stdin"],
            input=text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SpeechError(f"espeak-ng took more than {timeout:g} s for {text[:40]!r}") from None
    if done.returncode != 0:
        reason = (done.stderr or "").strip().splitlines()
        raise SpeechError(
            f"espeak-ng failed (exit {done.returncode}): {reason[0] if reason else 'no message'}"
        )
    if done.stderr.strip():  # e.g. an unknown voice: espeak-ng says so and exits 0
        raise SpeechError(f"espeak-ng: {done.stderr.strip().splitlines()[0]}")
    return done.stdout


def synthesize(
    text: str,
    voice: str,
    path: str | Path,
    *,
    pitch: int | None = None,
    speed: int | None = None,
    timeout: float = 30.0,
) -> Path:
    """Speak ``text`` with espeak-ng into the wav file ``path`` (16-bit mono, 22 050 Hz).

    Parameters
    ----------
    text : str
        One sentence: at most 1000 characters, no newlines or other control characters.
        It goes to espeak-ng on stdin, never through a shell or as an option.
    voice : str
        espeak-ng voice, a language and optionally a variant: ``"en"``, ``"en+f2"``,
        ``"en-us+m3"`` (``espeak-ng --voices`` and ``--voices=variant`` list them).
    path : str or Path
        The wav file to write.
    pitch : int, optional
        Base pitch, 0-99 (espeak-ng ``-p``; its default 50).
    speed : int, optional
        Speaking rate in words per minute, 80-450 (espeak-ng ``-s``; its default 175).
    timeout : float, default=30.0
        Seconds espeak-ng may take.

    Returns
    -------
    Path
        ``path``.
    """
    text, voice = _check_text(text), _check_voice(voice)
    args = ["-v", voice, "-w", str(path)]
    for flag, value, low, high in (("-p", pitch, 0, 99), ("-s", speed, 80, 450)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise DataError(f"espeak-ng {flag} must be an integer in [{low}, {high}]")
            args += [flag, str(value)]
    _run_espeak(args, text, timeout)
    return Path(path)


def parse_phonemes(transcription: str) -> list[str]:
    """Phonemes of an ``espeak-ng -q -x --sep=_`` transcription, in order.

    Stress and syllable marks (``' , ; % =``) are dropped; words (spaces) and clauses
    (lines) are not marked.

    Examples
    --------
    >>> parse_phonemes("h_@_l_'oU w_'3:_l_d\\nD_I_s")
    ['h', '@', 'l', 'oU', 'w', '3:', 'l', 'd', 'D', 'I', 's']
    """
    tokens = re.split(r"[\s_]+", transcription)
    return [p for p in (t.translate(_STRESS) for t in tokens) if p]


def phonemes(text: str, voice: str = "en", *, timeout: float = 30.0) -> list[str]:
    """The phonemes espeak-ng speaks for ``text`` with ``voice`` (its ``-x`` mnemonics).

    Parameters
    ----------
    text, voice, timeout
        As in :func:`synthesize`.

    Returns
    -------
    list of str
        See :func:`parse_phonemes`.
    """
    text, voice = _check_text(text), _check_voice(voice)
    return parse_phonemes(_run_espeak(["-q", "-x", "--sep=_", "-v", voice], text, timeout))


def read_wav(path: str | Path) -> NDArray[np.float64]:
    """A mono wav file as float samples in [-1, 1] at :data:`SAMPLE_RATE` (resampled if
    needed; channels averaged). A missing or unreadable file is a :class:`DataError`."""
    librosa, soundfile = _audio_libs()
    try:
        audio, sr = soundfile.read(str(path), dtype="float64", always_2d=True)
    except (OSError, RuntimeError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise DataError(f"cannot read audio {path}: {exc}") from None
    audio = audio.mean(axis=1)
    if audio.size == 0:
        raise DataError(f"{path}: no audio samples")
    if sr != SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=sr, target_sr=SAMPLE_RATE)
    return np.asarray(audio, dtype=np.float64)


def log_mel(audio: ArrayLike) -> NDArray[np.float64]:
    """Log-mel spectrogram ``(N_MELS, frames)`` in dB of samples at :data:`SAMPLE_RATE`.

    Mel power floored at 1e-8 (-80 dB), so silence has a finite value.
    """
    librosa, _ = _audio_libs()
    y = np.asarray(audio, dtype=np.float64)
    mel = librosa.feature.melspectrogram(
        y=y, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS, power=2.0
    )
    return 10.0 * np.log10(np.maximum(mel, 1e-8))


def mel_to_audio(mel_db: ArrayLike, *, n_iter: int = 32) -> NDArray[np.float64]:
    """A waveform for a log-mel spectrogram in dB, by Griffin-Lim phase reconstruction
    (``librosa.feature.inverse.mel_to_audio``; ``n_iter`` iterations). Float samples at
    :data:`SAMPLE_RATE`, scaled to a peak of 0.9 (unless silent)."""
    librosa, _ = _audio_libs()
    power = 10.0 ** (np.asarray(mel_db, dtype=np.float64) / 10.0)
    y = librosa.feature.inverse.mel_to_audio(
        power, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, power=2.0, n_iter=n_iter
    )
    peak = float(np.abs(y).max()) if y.size else 0.0
    return y * (0.9 / peak) if peak > 0 else y


def mel_segments(
    mel_db: ArrayLike, frames: int = 32, *, layout: str = "image"
) -> NDArray[np.float64]:
    """Cut a spectrogram ``(n_mels, T)`` into ``ceil(T / frames)`` segments, side by side;
    the last one padded with silence (-80 dB).

    Parameters
    ----------
    mel_db : array-like of shape (n_mels, T)
        Log-mel spectrogram in dB.
    frames : int, default=32
        Frames per segment.
    layout : {"image", "bands"}, default="image"
        ``"image"``: segments ``(n, n_mels, frames)``, grey images whose rows are mel bands
        (2-D convolutions then slide over frequency too). ``"bands"``: ``(n, n_mels, 1,
        frames)``, the mel bands as channels of a 1-pixel-high strip, so convolutions run
        over time only and instance normalisation removes each channel's mean over time --
        the spectral envelope, i.e. much of the voice -- as in AdaIN-VC's 1-D convolutions.

    Returns
    -------
    ndarray
        ``(n, n_mels, frames)`` or ``(n, n_mels, 1, frames)``.
    """
    mel = np.asarray(mel_db, dtype=np.float64)
    if mel.ndim != 2 or mel.shape[1] == 0:
        raise DataError(f"a spectrogram has shape (n_mels, frames > 0); got {mel.shape}")
    if layout not in ("image", "bands"):
        raise DataError(f"layout must be 'image' or 'bands', got {layout!r}")
    n = -(-mel.shape[1] // frames)
    padded = np.full((mel.shape[0], n * frames), _FLOOR_DB)
    padded[:, : mel.shape[1]] = mel
    segs = padded.reshape(mel.shape[0], n, frames).transpose(1, 0, 2).copy()
    return segs[:, :, None, :] if layout == "bands" else segs


def join_segments(segments: ArrayLike, n_frames: int | None = None) -> NDArray[np.float64]:
    """Inverse of :func:`mel_segments` (either layout): segments side by side, cut to
    ``n_frames`` frames (default: all); shape ``(n_mels, frames)``."""
    s = np.asarray(segments, dtype=np.float64)
    if s.ndim == 4 and s.shape[1] == 1:  # (n, 1, n_mels, frames) images
        s = s[:, 0]
    elif s.ndim == 4 and s.shape[2] == 1:  # (n, n_mels, 1, frames) strips
        s = s[:, :, 0]
    if s.ndim != 3:
        raise DataError(f"segments have shape (n, n_mels, frames); got {s.shape}")
    mel = s.transpose(1, 0, 2).reshape(s.shape[1], -1)
    return mel if n_frames is None else mel[:, :n_frames]


def frame_labels(
    mel_db: ArrayLike, phones: Sequence[str], *, top_db: float = 40.0
) -> NDArray[np.str_]:
    """Label each frame of an utterance with a phoneme, spread evenly over its voiced frames.

    espeak-ng gives no phoneme timing for its own voices (``--pho`` needs mbrola), so this is
    an approximation: frames more than ``top_db`` dB below the utterance's loudest frame
    (mean over mel bands) are :data:`SILENCE`; the others, in order, are split into
    ``len(phones)`` runs of (near) equal length, one per phoneme.

    Parameters
    ----------
    mel_db : array-like of shape (n_mels, frames)
        Log-mel spectrogram in dB.
    phones : sequence of str
        The utterance's phonemes in order (:func:`phonemes`).
    top_db : float, default=40.0
        Silence threshold, in dB below the loudest frame.

    Returns
    -------
    ndarray of str, shape (frames,)

    Examples
    --------
    >>> mel = np.array([[-100.0, 0, 0, 0, 0, -100]])
    >>> frame_labels(mel, ["a", "b"]).tolist()
    ['_', 'a', 'a', 'b', 'b', '_']
    """
    mel = np.asarray(mel_db, dtype=np.float64)
    if mel.ndim != 2:
        raise DataError(f"a spectrogram has shape (n_mels, frames); got {mel.shape}")
    loud = mel.mean(axis=0)
    voiced = np.flatnonzero(loud > loud.max() - top_db) if loud.size else np.array([], int)
    labels = np.full(mel.shape[1], SILENCE, dtype=object)
    if len(phones) and voiced.size:
        which = (np.arange(voiced.size) * len(phones)) // voiced.size
        labels[voiced] = np.asarray(list(phones), dtype=object)[which]
    return labels.astype(str)


@dataclass(frozen=True)
class Utterance:
    """One sentence spoken in one voice (see :func:`speak`).

    Attributes
    ----------
    sentence : int
        Index of the sentence in the list given to :func:`speak`.
    text : str
        The sentence.
    voice : str
        The espeak-ng voice.
    wav : Path
        The wav file (22 050 Hz mono).
    mel : ndarray of shape (N_MELS, frames)
        Log-mel spectrogram in dB.
    phonemes : tuple of str
        espeak-ng's phonemes of the sentence in this voice.
    """

    sentence: int
    text: str
    voice: str
    wav: Path
    mel: NDArray[np.float64]
    phonemes: tuple[str, ...]


def _espeak_version() -> str:
    return _run_espeak(["--version"], "", 10.0).strip() if espeak_available() else ""


def speak(
    sentences: Sequence[str],
    voices: Sequence[str],
    *,
    cache_dir: str | Path | None = None,
    timeout: float = 30.0,
) -> list[Utterance]:
    """Every sentence in every voice: wav files, log-mel spectrograms and phonemes, cached.

    Parameters
    ----------
    sentences : sequence of str
        Sentences (see :func:`synthesize` for what one may hold).
    voices : sequence of str
        espeak-ng voices (``"en+m1"``, ``"en+f2"``, ...).
    cache_dir : str or Path, optional
        Folder of the wav files and spectrograms; one made under the system's temporary
        folder by default (``anomalia-speech``). Files are named by a hash of the text,
        voice, espeak-ng version and spectrogram settings, so a second call with the same
        sentences and voices reads them instead of synthesising again.
    timeout : float, default=30.0
        Seconds espeak-ng may take per call.

    Returns
    -------
    list of Utterance
        Sentence-major: all voices of sentence 0, then of sentence 1, ...
    """
    texts = [_check_text(t) for t in sentences]
    names = [_check_voice(v) for v in voices]
    _audio_libs()
    folder = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir())
    folder = folder / "anomalia-speech" if cache_dir is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    version = _espeak_version()
    out = []
    for i, text in enumerate(texts):
        for voice in names:
            key = f"{version}|{voice}|{SAMPLE_RATE},{N_FFT},{HOP_LENGTH},{N_MELS}|{text}"
            stem = f"{voice}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
            wav, feats = folder / f"{stem}.wav", folder / f"{stem}.npz"
            if not (wav.exists() and feats.exists()):
                synthesize(text, voice, wav, timeout=timeout)
                mel = log_mel(read_wav(wav))
                phones = phonemes(text, voice, timeout=timeout)
                np.savez(feats, mel=mel, phonemes=np.array(phones, dtype=str))
            with np.load(feats) as z:
                mel, phones = z["mel"], z["phonemes"].tolist()
            out.append(Utterance(i, text, voice, wav, mel, tuple(phones)))
    return out


def convert(
    det: DisentangleDetector, source_mel: ArrayLike, target_mel: ArrayLike
) -> NDArray[np.float64]:
    """Say the source utterance in the target's voice, with a ``disentangle`` model trained
    on log-mel segments (:func:`mel_segments`, either layout).

    The source is cut into segments (:func:`mel_segments`); each keeps its content code and
    takes the target's style: the mean of the style vectors of the target's segments (its
    silent padding excluded unless the target is shorter than a segment). The decoded
    segments are joined back to the source's length.

    Parameters
    ----------
    det : DisentangleDetector
        Fitted on segments of either layout: ``image_shape_`` ``(1, n_mels, frames)`` or
        ``(n_mels, 1, frames)``.
    source_mel, target_mel : array-like of shape (N_MELS, frames)
        Log-mel spectrograms in dB (:func:`log_mel`), of any length.

    Returns
    -------
    ndarray of shape (N_MELS, source frames)
        The converted spectrogram in dB.
    """
    shape = getattr(det, "image_shape_", None)
    if shape is None or len(shape) != 3 or 1 not in shape[:2]:
        raise DataError(
            "the model was not trained on spectrogram segments: (n, n_mels, frames) or "
            "(n, n_mels, 1, frames) arrays"
        )
    layout = "image" if shape[0] == 1 else "bands"
    n_mels, frames = shape[1] if layout == "image" else shape[0], shape[2]
    src, tgt = np.asarray(source_mel, float), np.asarray(target_mel, float)
    for name, mel in (("source", src), ("target", tgt)):
        if mel.ndim != 2 or mel.shape[0] != n_mels:
            raise DataError(
                f"the {name} spectrogram has shape {mel.shape}; the model takes {n_mels} mel bands"
            )
    segs = mel_segments(src, frames, layout=layout)
    full = tgt[:, : max(frames, tgt.shape[1] // frames * frames)]
    style = det.style(mel_segments(full, frames, layout=layout)).mean(axis=0)
    content = det.content(segs).reshape(len(segs), -1)
    codes = np.hstack([content, np.tile(style, (len(segs), 1))])
    return join_segments(det.inverse_transform(codes), src.shape[1])


def speaker_features(mel_db: ArrayLike) -> NDArray[np.float64]:
    """A fixed-size description of a voice: mean and standard deviation over the voiced
    frames of each mel band and of its first difference (delta), ``4 * n_mels`` values."""
    librosa, _ = _audio_libs()
    mel = np.asarray(mel_db, dtype=np.float64)
    loud = mel.mean(axis=0)
    voiced = mel[:, loud > loud.max() - 40.0]
    delta = (
        librosa.feature.delta(voiced, width=3, mode="nearest")
        if voiced.shape[1] >= 3
        else 0 * voiced
    )
    return np.concatenate([voiced.mean(1), voiced.std(1), delta.mean(1), delta.std(1)])


def dtw_distance(a: ArrayLike, b: ArrayLike) -> float:
    """Mean Euclidean distance (dB) between the frames of two spectrograms
    ``(n_mels, frames)`` along their dynamic-time-warping path (``librosa.sequence.dtw``)."""
    librosa, _ = _audio_libs()
    A, B = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    D, path = librosa.sequence.dtw(X=A, Y=B, metric="euclidean")
    return float(D[-1, -1] / len(path))


def purity(codes: ArrayLike, labels: ArrayLike) -> float:
    """Share of items whose label is the most common label of their code (cluster purity).

    1 when every code holds one label; a single code for everything gives the share of the
    most common label.

    Examples
    --------
    >>> purity([0, 0, 1, 1], ["a", "a", "b", "a"])
    0.75
    """
    c, y = np.asarray(codes).ravel(), np.asarray(labels).ravel()
    if c.shape != y.shape or c.size == 0:
        raise DataError(f"codes and labels must be equally long, non-empty; got {c.size}, {y.size}")
    _, ci = np.unique(c, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    table = np.zeros((ci.max() + 1, yi.max() + 1), dtype=np.int64)
    np.add.at(table, (ci, yi), 1)
    return float(table.max(axis=1).sum() / c.size)
