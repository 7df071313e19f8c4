"""anomalia.speech and `anomalia speak` / `convert`: espeak-ng speech, spectrograms, codes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from anomalia import speech
from anomalia.errors import DataError

runner = CliRunner()
needs_espeak = pytest.mark.skipif(not speech.espeak_available(), reason="espeak-ng not installed")


def _audio():
    pytest.importorskip("librosa")
    pytest.importorskip("soundfile")


# -- no espeak-ng, no audio extra needed --------------------------------------------------------
def test_parse_phonemes_drops_stress_and_splits_words_and_clauses():
    out = "h_@_l_'oU w_'3:_l_d\n D_I_s I_z a# t_'E_s_t 0_v f_,o@_t_i\n"
    assert speech.parse_phonemes(out) == [
        *["h", "@", "l", "oU", "w", "3:", "l", "d"],
        *["D", "I", "s", "I", "z", "a#", "t", "E", "s", "t", "0", "v", "f", "o@", "t", "i"],
    ]
    assert speech.parse_phonemes("  \n") == []


def test_frame_labels_spread_phonemes_over_voiced_frames_only():
    loud = np.array([-80, -10, -12, -80, -11, -10, -10, -80.0])
    mel = np.tile(loud, (3, 1))
    labels = speech.frame_labels(mel, ["a", "b", "c"], top_db=40)
    # 5 voiced frames (1, 2, 4, 5, 6) for 3 phonemes: 2, 2, 1, in order; silence elsewhere
    assert labels.tolist() == ["_", "a", "a", "_", "b", "b", "c", "_"]
    assert set(speech.frame_labels(mel, [])) == {speech.SILENCE}


def test_purity_on_hand_made_codes():
    assert speech.purity([0, 0, 1, 1], ["a", "a", "b", "b"]) == 1.0
    assert speech.purity([0, 0, 0, 0], ["a", "a", "a", "b"]) == 0.75  # one code: majority share
    assert speech.purity([5, 5, 9, 9, 9], ["x", "y", "y", "y", "x"]) == pytest.approx(3 / 5)
    with pytest.raises(DataError, match="equally long"):
        speech.purity([0, 1], ["a"])


def test_codebook_perplexity_counts_the_codes_used_evenly():
    from anomalia.represent import perplexity

    assert perplexity([10, 10, 10, 10]) == pytest.approx(4.0)
    assert perplexity([40, 0, 0, 0]) == pytest.approx(1.0)
    assert 1.0 < perplexity([30, 10, 0, 0]) < 2.0


def test_segments_cut_pad_and_join_back():
    mel = np.arange(5 * 70, dtype=float).reshape(5, 70)
    segs = speech.mel_segments(mel, 32)
    assert segs.shape == (3, 5, 32)
    assert (segs[2, :, 6:] == -80.0).all()  # the padding is silence
    np.testing.assert_array_equal(segs[1], mel[:, 32:64])
    np.testing.assert_array_equal(speech.join_segments(segs, 70), mel)
    np.testing.assert_array_equal(speech.join_segments(segs[:, None], 70), mel)  # (n, 1, H, W)
    bands = speech.mel_segments(mel, 32, layout="bands")
    assert bands.shape == (3, 5, 1, 32)
    np.testing.assert_array_equal(speech.join_segments(bands, 70), mel)
    with pytest.raises(DataError, match="n_mels, frames"):
        speech.mel_segments(np.zeros(10))


@pytest.mark.parametrize(
    ("text", "voice", "match"),
    [
        ("", "en", "non-empty"),
        ("two\nlines", "en", "control characters"),
        ("x" * 1001, "en", "at most 1000"),
        ("hello", "en; rm -rf /", "voice must be"),
        ("hello", "-w/tmp/x", "voice must be"),
    ],
)
def test_bad_text_or_voice_is_a_clear_error_before_espeak_runs(text, voice, match, tmp_path):
    with pytest.raises(DataError, match=match):
        speech.synthesize(text, voice, tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


def test_missing_espeak_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert not speech.espeak_available()
    with pytest.raises(speech.SpeechError, match="apt-get install espeak-ng"):
        speech.synthesize("hello", "en", tmp_path / "x.wav")


# -- espeak-ng and the audio extra ------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    _audio()
    if not speech.espeak_available():
        pytest.skip("espeak-ng not installed")
    folder = tmp_path_factory.mktemp("speech")
    return folder, speech.speak(
        ["Hello world.", "Good morning."], ["en+m1", "en+f2"], cache_dir=folder
    )


@needs_espeak
def test_speak_makes_every_sentence_in_every_voice(corpus):
    folder, utts = corpus
    assert [(u.sentence, u.voice) for u in utts] == [
        (0, "en+m1"), (0, "en+f2"), (1, "en+m1"), (1, "en+f2"),
    ]  # fmt: skip
    for u in utts:
        assert u.wav.is_file() and u.wav.parent == folder
        assert u.mel.shape[0] == speech.N_MELS and 20 < u.mel.shape[1] < 200  # ~0.3-2 s
        assert np.isfinite(u.mel).all() and u.mel.min() >= -80.0
    assert utts[0].phonemes[:4] == ("h", "@", "l", "oU")
    # different voices, same words: different spectrograms, same phonemes
    assert utts[0].phonemes == utts[1].phonemes
    assert not np.allclose(utts[0].mel.mean(1), utts[1].mel.mean(1), atol=1.0)


@needs_espeak
def test_speak_reads_its_cache_on_a_second_call(corpus, monkeypatch):
    folder, first = corpus

    def no_espeak(*args, **kwargs):
        raise AssertionError("espeak-ng ran again")

    monkeypatch.setattr(speech, "synthesize", no_espeak)
    monkeypatch.setattr(speech, "phonemes", no_espeak)
    again = speech.speak(["Hello world.", "Good morning."], ["en+m1", "en+f2"], cache_dir=folder)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.mel, b.mel)
        assert a.wav == b.wav and a.phonemes == b.phonemes


@needs_espeak
def test_log_mel_griffin_lim_and_dtw(corpus):
    _, utts = corpus
    mel = utts[0].mel
    audio = speech.mel_to_audio(mel, n_iter=4)
    assert abs(len(audio) - mel.shape[1] * speech.HOP_LENGTH) <= speech.HOP_LENGTH
    again = speech.log_mel(audio)
    assert again.shape[0] == speech.N_MELS and abs(again.shape[1] - mel.shape[1]) <= 1
    # the same words are closer in another voice than other words in the same voice? no such
    # promise; but an utterance is at distance 0 from itself and > 0 from another
    assert speech.dtw_distance(mel, mel) == 0.0
    assert speech.dtw_distance(mel, utts[1].mel) > 1.0
    assert speech.speaker_features(mel).shape == (4 * speech.N_MELS,)


@needs_espeak
def test_unknown_voice_is_a_speech_error(tmp_path):
    with pytest.raises(speech.SpeechError, match="espeak-ng"):
        speech.synthesize("hello", "xx-nonexistent", tmp_path / "x.wav")


# -- the CLI end to end -----------------------------------------------------------------------
def run(*args):
    from anomalia.cli.app import app

    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def vc_model(tmp_path_factory):
    _audio()
    pytest.importorskip("torch")
    if not speech.espeak_available():
        pytest.skip("espeak-ng not installed")
    folder = tmp_path_factory.mktemp("vc")
    voices = ["-v", "en+m1", "-v", "en+f2"]
    res = run("speak", folder / "data", "-t", "Hello world.", "-t", "Good morning.", *voices)
    assert res.exit_code == 0, res.output
    assert "spoke 4 utterances" in res.output
    segments = np.load(folder / "data" / "segments.npy")
    assert segments.shape[1:] == (speech.N_MELS, 1, 32) and len(segments) >= 4  # bands
    model = folder / "vc.anomalia"
    params = ["-p", "channels=4,8", "-p", "epochs=2", "-p", "validation_fraction=0"]
    res = run("fit", folder / "data" / "segments.npy", "-d", "disentangle", *params, "-o", model)
    assert res.exit_code == 0, res.output
    return folder, model


def test_convert_writes_a_wav_in_the_target_voice_shape(vc_model):
    import soundfile

    folder, model = vc_model
    src, tgt = folder / "data" / "s0-en+m1.wav", folder / "data" / "s1-en+f2.wav"
    out = folder / "converted.wav"
    res = run("convert", model, src, tgt, "-o", out, "--iterations", "2")
    assert res.exit_code == 0, res.output
    audio, sr = soundfile.read(out)
    source, _ = soundfile.read(src)
    assert sr == speech.SAMPLE_RATE and audio.ndim == 1
    assert abs(len(audio) - len(source)) <= speech.HOP_LENGTH  # the source's length
    assert 0.5 < np.abs(audio).max() <= 1.0


def test_swap_of_two_utterances_is_the_voice_conversion(vc_model):
    import soundfile

    folder, model = vc_model
    src, tgt = folder / "data" / "s0-en+m1.wav", folder / "data" / "s1-en+f2.wav"
    out = folder / "swapped.wav"
    res = run("swap", model, src, tgt, "-o", out)
    assert res.exit_code == 0, res.output
    audio, sr = soundfile.read(out)
    assert sr == speech.SAMPLE_RATE and abs(len(audio) - len(soundfile.read(src)[0])) <= (
        speech.HOP_LENGTH
    )


def test_convert_function_keeps_the_source_length(vc_model):
    import anomalia

    folder, model = vc_model
    det = anomalia.load(model)
    src = speech.log_mel(speech.read_wav(folder / "data" / "s0-en+m1.wav"))
    tgt = speech.log_mel(speech.read_wav(folder / "data" / "s1-en+f2.wav"))
    assert speech.convert(det, src, tgt).shape == src.shape
    with pytest.raises(DataError, match="mel bands"):
        speech.convert(det, src[:40], tgt)
    # a model of the other layout, 2-D spectrogram images
    segs = speech.mel_segments(src, 32)
    image_det = anomalia.make_detector("disentangle", channels=(4,), epochs=1, random_state=0)
    image_det.fit(np.concatenate([segs] * 4))
    assert speech.convert(image_det, src, tgt).shape == src.shape
    with pytest.raises(DataError, match="not trained on spectrogram segments"):
        speech.convert(
            anomalia.make_detector("disentangle", epochs=1).fit(np.ones((8, 2, 3, 4))), src, tgt
        )


def test_speak_bad_options_exit_2(tmp_path):
    res = run("speak", tmp_path / "out", "--layout", "round")
    assert res.exit_code == 2 and "--layout must be" in res.output
    res = run("speak", tmp_path / "out", "-v", "en;ls")
    assert res.exit_code == 2 and "voice must be" in res.output
    assert not (tmp_path / "out").exists()


def test_convert_bad_inputs_exit_2_and_write_nothing(vc_model, tmp_path):
    folder, model = vc_model
    src = folder / "data" / "s0-en+m1.wav"
    res = run("convert", model, src, src, "-o", tmp_path / "x.mp3")
    assert res.exit_code == 2 and "must end in .wav" in res.output
    res = run("convert", model, src, tmp_path / "missing.wav", "-o", tmp_path / "x.wav")
    assert res.exit_code == 2 and "cannot read audio" in res.output
    table, other = tmp_path / "t.csv", tmp_path / "gauss.anomalia"
    np.savetxt(
        table, np.random.default_rng(0).random((20, 3)), delimiter=",", header="a,b,c", comments=""
    )
    assert run("fit", table, "-d", "gaussian", "-o", other).exit_code == 0
    res = run("convert", other, src, src, "-o", tmp_path / "x.wav")
    assert res.exit_code == 2 and "not a disentangle model" in res.output
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "x.mp3").exists()
