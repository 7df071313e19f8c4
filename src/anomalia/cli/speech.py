"""anomalia speak / convert: espeak-ng speech as spectrogram segments, and voice conversion."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from ._common import Commands, ModelArg, console, handle_errors, open_model

app = Commands()


@app.command()
@handle_errors
def speak(
    out: Annotated[
        Path, typer.Argument(help="Folder to write: one wav per sentence and voice, segments.npy.")
    ],
    text: Annotated[
        list[str] | None,
        typer.Option("--text", "-t", help="A sentence to speak (repeat; default: 8 built-in)."),
    ] = None,
    voice: Annotated[
        list[str] | None,
        typer.Option("--voice", "-v", help="An espeak-ng voice (repeat; default: en+m1, en+f2)."),
    ] = None,
    frames: Annotated[
        int, typer.Option("--frames", help="Frames per spectrogram segment (11.6 ms each).")
    ] = 32,
    layout: Annotated[
        str,
        typer.Option(
            "--layout",
            help="Segments as 'bands' (n, 80, 1, FRAMES): mel bands as channels, convolutions "
            "over time, as AdaIN-VC; or 'image' (n, 80, FRAMES): grey spectrogram images.",
        ),
    ] = "bands",
) -> None:
    """Speak sentences in voices with espeak-ng: OUT/s<i>-<voice>.wav for each, and
    OUT/segments.npy, their 80-band log-mel spectrograms (dB) cut into FRAMES-frame segments,
    the training data of 'anomalia fit -d disentangle' for 'anomalia convert'."""
    import numpy as np

    from .. import speech
    from .._utils.files import atomic_output
    from ..errors import DataError

    if frames < 4:
        raise DataError(f"--frames must be at least 4, got {frames}")
    if layout not in ("bands", "image"):
        raise DataError(f"--layout must be 'bands' or 'image', got {layout!r}")
    utts = speech.speak(text or speech.SENTENCES, voice or ("en+m1", "en+f2"))
    segments = np.concatenate([speech.mel_segments(u.mel, frames, layout=layout) for u in utts])
    out.mkdir(parents=True, exist_ok=True)
    for u in utts:
        atomic_output(
            out / f"s{u.sentence}-{u.voice}.wav", lambda p, u=u: shutil.copyfile(u.wav, p)
        )
    atomic_output(out / "segments.npy", lambda p: np.save(p, segments.astype(np.float32)))
    console.print(
        f"spoke {len(utts)} utterances; wrote their wavs and {len(segments)} segments of "
        f"{speech.N_MELS} bands x {frames} frames to {out / 'segments.npy'}",
        highlight=False,
    )


@app.command()
@handle_errors
def convert(
    model: ModelArg,
    source: Annotated[Path, typer.Argument(help="Utterance whose words are kept (.wav).")],
    target: Annotated[Path, typer.Argument(help="Utterance of the voice to take (.wav).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Converted utterance to write (.wav).")],
    iterations: Annotated[
        int, typer.Option("--iterations", help="Griffin-Lim iterations (phase reconstruction).")
    ] = 32,
) -> None:
    """Say SOURCE in the voice of TARGET with a 'disentangle' model trained on spectrogram
    segments ('anomalia speak', then 'anomalia fit -d disentangle'): the source's content
    codes decoded with the target's mean style, back to a waveform by Griffin-Lim."""
    from .. import speech
    from .._utils.files import atomic_output
    from ..detectors.disentangle import DisentangleDetector
    from ..errors import DataError

    if out.suffix.lower() != ".wav":
        raise DataError(f"--out must end in .wav, got {out.name!r}")
    if iterations < 1:
        raise DataError(f"--iterations must be at least 1, got {iterations}")
    det, _ = open_model(model)
    if not isinstance(det, DisentangleDetector):
        raise DataError(
            f"{model} is not a disentangle model (it holds {type(det).__name__}); convert "
            "needs one trained with 'anomalia fit -d disentangle' on 'anomalia speak' segments"
        )
    mel = speech.convert(
        det, speech.log_mel(speech.read_wav(source)), speech.log_mel(speech.read_wav(target))
    )
    audio = speech.mel_to_audio(mel, n_iter=iterations)
    import soundfile

    atomic_output(
        out,
        lambda p: soundfile.write(
            str(p), audio, speech.SAMPLE_RATE, subtype="PCM_16", format="WAV"
        ),
    )
    seconds = len(audio) / speech.SAMPLE_RATE
    console.print(
        f"converted {source.name} to the voice of {target.name}: {seconds:.2f} s; wrote {out}",
        highlight=False,
    )
