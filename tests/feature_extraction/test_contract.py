"""The contract every registered extractor keeps, checked for each name in the registry (a new extractor file is
picked up without editing this test), with the tiny random encoders of the ``checkpoints`` fixture for those
that load a model: the arrays of each level with the width the extractor declares, ``-UTT`` the mean of
``-FRM`` over time, a clip's features the same alone or in any batch, and a second run that redoes only the
clips whose outputs are missing."""
import hashlib
import os

import numpy as np
import pytest

from feature_extraction.registry import build_extractor, extractor_class, extractor_options, known_extractors
from feature_extraction.release import find_clips
from feature_extraction.runner import Inputs, extract, output_paths
from tests.feature_extraction.media import tone, write_release
from tests.feature_extraction.test_handcrafted import good_rows, write_openface_csv
from toolkit.errors import UserError

LEVELS = ("UTT", "FRM")
CLIPS = ["c1", "c2", "c3"]


def frames(count, size=40, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (count, size, size, 3), dtype=np.uint8)


def source_inputs(source, folder):
    """Three inputs of ``source`` of different lengths, as the runner hands them to ``prepare``."""
    if source in ("audio", "audio_stream"):
        waves = [tone(1.0), tone(2.3, f0=300), tone(0.6, f0=120)]
        if source == "audio_stream":  # a stream of pieces, as decode.AudioTrack yields them
            return [[wave[start:start + 7000] for start in range(0, len(wave), 7000)] for wave in waves]
        return waves
    if source == "text":
        return ["我很高兴 I am so happy today", "", "他很生气 he is angry, stop doing this now"]
    if source in ("images", "video"):
        return [frames(5), frames(2, seed=1), frames(11, seed=2)]
    if source == "openface":
        return [write_openface_csv(os.path.join(folder, f"of{i}.csv"), good_rows(n)) for i, n in enumerate((5, 2, 8))]
    raise AssertionError(f"no test input for source {source!r}: add one to source_inputs in {__file__}")


_BUILT = {}


def variants(name, checkpoints):
    """(label, extractor) for each way the tests can build extractor ``name``: once with its default options, or,
    when it loads a model, once per tiny checkpoint it accepts (a model of another kind is refused)."""
    if (name, id(checkpoints)) not in _BUILT:
        _BUILT[name, id(checkpoints)] = _build_variants(name, checkpoints)
    return _BUILT[name, id(checkpoints)]


def _build_variants(name, checkpoints):
    takes_model = any(opt.dest == "model" for opt in extractor_class(name).options)
    if not takes_model:
        return [("defaults", build_extractor(name, extractor_options(name), LEVELS))]
    built = []
    for kind, path in checkpoints.items():
        try:
            built.append((kind, build_extractor(name, extractor_options(name, model=path, device="cpu", batch_size=4), LEVELS)))
        except UserError as err:
            assert "this extraction needs" in str(err), err
    assert built, f"extractor {name!r} accepts none of the tiny checkpoints {sorted(checkpoints)}"
    return built


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """Three clips with everything every source reads: video with audio, face crops, subtitles, OpenFace CSVs."""
    root = str(tmp_path_factory.mktemp("contract") / "release")
    write_release(root, CLIPS)
    for i, name in enumerate(CLIPS):
        write_openface_csv(os.path.join(root, "openface", f"{name}.csv"), good_rows(3 + i))
    return root


def check_outputs(extractor, folder, release):
    """Each clip gets every requested level, float32 and finite: UTT (C,) and FRM (T, C), C as declared."""
    inputs = source_inputs(extractor.source, folder)
    outs = extractor.encode([extractor.prepare(x) for x in inputs])
    assert len(outs) == len(inputs)
    for out in outs:
        assert sorted(out) == sorted(extractor.levels)
        for level, array in out.items():
            assert array.dtype == np.float32 and np.isfinite(array).all()
            expected = (extractor.dim(level),) if level == "UTT" else (array.shape[0], extractor.dim(level))
            assert array.shape == expected and array.size > 0, (level, array.shape, expected)
    described = [(f.name, f.modality, f.level, f.dim) for f in extractor.features()]
    assert described == [(f"{extractor.name}-{lv}", extractor.modality, lv, extractor.dim(lv)) for lv in extractor.levels]


def check_utt_is_the_frame_mean(extractor, folder, release):
    if not extractor.utt_is_frame_mean:
        pytest.skip(f"{extractor.name}: UTT is declared not to be a frame mean (utt_is_frame_mean = False)")
    for x in source_inputs(extractor.source, folder):
        (out,) = extractor.encode([extractor.prepare(x)])
        np.testing.assert_allclose(out["UTT"], out["FRM"].mean(0), atol=1e-5, rtol=1e-4)


def check_batch_independence(extractor, folder, release):
    """A clip's features are the same alone, in a batch of other clips and in another order."""
    prepared = [extractor.prepare(x) for x in source_inputs(extractor.source, folder)]
    alone = extractor.encode([prepared[1]])[0]
    together = extractor.encode(prepared)[1]
    reordered = extractor.encode(prepared[::-1])[1]
    for level in extractor.levels:
        np.testing.assert_allclose(together[level], alone[level], atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(reordered[level], alone[level], atol=1e-5, rtol=1e-4)


def _stamps(paths):
    return {p: (hashlib.sha1(open(p, "rb").read()).hexdigest(), os.stat(p).st_mtime_ns) for p in paths}


def check_resume(extractor, folder, release):
    """Through the runner: a second run writes only the clip whose output was removed, and leaves the rest alone."""
    subtitles = os.path.join(release, "subtitle_chieng.csv") if extractor.source == "text" else None
    clips = find_clips(release, subtitles=subtitles)
    out = os.path.join(folder, "features")
    first = extract(extractor, clips, out, Inputs(), workers=0, progress=False)
    assert (first.done, first.existing, first.failed) == (len(CLIPS), 0, {})
    removed = output_paths(out, extractor, "c2")[extractor.levels[0]]
    written = np.load(removed)
    os.remove(removed)
    others = _stamps([p for name in ("c1", "c3") for p in output_paths(out, extractor, name).values()])
    second = extract(extractor, clips, out, Inputs(), workers=0, progress=False)
    assert (second.done, second.existing, second.failed) == (1, len(CLIPS) - 1, {})
    assert _stamps(others) == others
    np.testing.assert_allclose(np.load(removed), written, atol=1e-5, rtol=1e-4)


CONTRACT = [check_outputs, check_utt_is_the_frame_mean, check_batch_independence, check_resume]


def run_check(check, name, checkpoints, folder, release):
    for label, extractor in variants(name, checkpoints):
        assert extractor.modality == extractor_class(name).modality  # what --help says is what it writes
        where = os.path.join(str(folder), label)
        os.makedirs(where, exist_ok=True)
        check(extractor, where, release)


@pytest.mark.parametrize("name", known_extractors())
@pytest.mark.parametrize("check", CONTRACT, ids=[c.__name__ for c in CONTRACT])
def test_contract(check, name, checkpoints, tmp_path, release):
    run_check(check, name, checkpoints, tmp_path, release)
