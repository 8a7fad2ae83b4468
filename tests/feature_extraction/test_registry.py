"""The extractor registry: what a registered class must say about itself, lookup by name, options as data."""
import pytest

import extract
from feature_extraction import registry
from feature_extraction.base import Extractor
from feature_extraction.handcrafted import OpenSmileExtractor
from tests.bad_inputs.helpers import run_main
from toolkit.errors import UserError


def test_the_shipped_extractors_keep_their_command_line_names():
    assert registry.known_extractors() == ["audio", "audio_llm", "openface", "opensmile", "text", "video_llm", "visual"]
    assert {name: registry.extractor_class(name).modality for name in registry.known_extractors()} == {
        "audio": "audio", "audio_llm": "audio", "openface": "video", "opensmile": "audio", "text": "text",
        "video_llm": "video", "visual": "video"}


def test_help_lists_every_registered_extractor_with_its_modality_and_summary(capsys):
    code, out, _ = run_main(extract.main, ["--help"], capsys)
    text = " ".join(out.split())
    assert code == 0
    for name in registry.known_extractors():
        cls = registry.extractor_class(name)
        assert f"{name} {cls.modality} {' '.join(cls.summary.split())}" in text


def test_an_unknown_name_lists_the_registered_ones():
    with pytest.raises(UserError) as err:
        registry.extractor_class("opensmil")
    assert "audio, audio_llm, openface, opensmile, text, video_llm, visual" in str(err.value) and "did you mean 'opensmile'" in str(err.value)


def test_options_of_a_python_caller_start_from_the_defaults():
    options = registry.extractor_options("opensmile", feature_set="GeMAPSv01b")
    extractor = registry.build_extractor("opensmile", options, ("UTT", "FRM"))
    assert isinstance(extractor, OpenSmileExtractor) and extractor.name == "GeMAPSv01b"
    assert [(f.name, f.modality, f.level, f.dim) for f in extractor.features()] == [
        ("GeMAPSv01b-UTT", "audio", "UTT", 62), ("GeMAPSv01b-FRM", "audio", "FRM", 18)]
    with pytest.raises(TypeError, match="no option 'feature_sets'"):
        registry.extractor_options("opensmile", feature_sets="x")
    with pytest.raises(UserError, match="--modality audio needs --model"):
        registry.build_extractor("audio", registry.extractor_options("audio"), ("UTT",))


@pytest.mark.parametrize("attributes, problem", [
    ({"modality": "sound"}, "modality 'sound'"),
    ({"source": "smell"}, "source 'smell'"),
    ({"summary": ""}, "one-line summary"),
    ({"options": ("--flag",)}, "made with feature_extraction.registry.option"),
    ({"build": None}, "classmethod build"),
])
def test_a_class_that_does_not_say_what_it_is_is_refused(attributes, problem):
    body = {"summary": "a test class", "build": classmethod(lambda cls, options, levels: cls()), **attributes}
    if body["build"] is None:
        del body["build"]
    with pytest.raises(TypeError, match=problem):
        registry.register_extractor("half_done")(type("HalfDone", (Extractor,), body))
    assert "half_done" not in registry.EXTRACTORS


def test_a_taken_name_or_a_bad_name_is_refused():
    body = {"summary": "x", "build": classmethod(lambda cls, options, levels: cls())}
    with pytest.raises(ValueError, match="taken by feature_extraction.handcrafted.OpenSmileExtractor"):
        registry.register_extractor("opensmile")(type("Other", (Extractor,), body))
    with pytest.raises(TypeError, match="not a plain name"):
        registry.register_extractor("../up")(type("Up", (Extractor,), body))
