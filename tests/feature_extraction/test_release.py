import pytest

from feature_extraction.release import find_clips, find_openface_csv
from tests.feature_extraction.media import write_clip
from toolkit.errors import UserError


def test_clips_are_the_video_stems_with_what_exists_for_them(tmp_path):
    write_clip(str(tmp_path / "video" / "b.mp4"), seconds=0.5)
    write_clip(str(tmp_path / "video" / "a.avi"), seconds=0.5, codec="mpeg4")
    (tmp_path / "openface_face" / "a").mkdir(parents=True)
    (tmp_path / "openface_face" / "a" / "a.npy").write_bytes(b"")
    (tmp_path / "openface" / "b").mkdir(parents=True)
    (tmp_path / "openface" / "b" / "b.csv").write_text("frame\n")
    (tmp_path / "subtitle_chieng.csv").write_text("name,chinese,english\na,你好,\n", encoding="utf-8")
    clips = find_clips(str(tmp_path), subtitles=str(tmp_path / "subtitle_chieng.csv"), lang="english")
    assert [c.name for c in clips] == ["a", "b"]
    a, b = clips
    assert a.video.endswith("a.avi") and a.faces and a.text == "" and a.openface_csv is None
    assert b.faces is None and b.text is None and b.openface_csv.endswith("b/b.csv")


def test_names_csvs_choose_and_order_the_clips(tmp_path):
    write_clip(str(tmp_path / "video" / "a.mp4"), seconds=0.5)
    (tmp_path / "labels.csv").write_text("name,discrete\nvideo/z.mp4,happy\na,sad\n")
    (tmp_path / "cands.csv").write_text("name\na\nq\n")
    clips = find_clips(str(tmp_path), [str(tmp_path / "labels.csv"), str(tmp_path / "cands.csv")])
    assert [c.name for c in clips] == ["z", "a", "q"]
    assert clips[0].video is None and clips[1].video.endswith("a.mp4")


def test_openface_csv_in_either_layout(tmp_path):
    (tmp_path / "x.csv").write_text("")
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "y.csv").write_text("")
    assert find_openface_csv(str(tmp_path), "x").endswith("x.csv")
    assert find_openface_csv(str(tmp_path), "y").endswith("y/y.csv")
    assert find_openface_csv(str(tmp_path), "z") is None


def test_a_folder_without_clips_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no clips found"):
        find_clips(str(tmp_path))
    with pytest.raises(UserError, match="is not a folder"):
        find_clips(str(tmp_path / "nope"))
