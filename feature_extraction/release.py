"""The raw release as the challenges ship it, and the clip list an extraction runs over.

    <data>/video/<name>.mp4|.avi            the clips
    <data>/audio/<name>.wav                 the audio tracks (optional: otherwise read from the video)
    <data>/openface_face/<name>/<name>.npy  face crops per frame, (T, H, W, 3) uint8, OpenCV BGR order
    <data>/openface/<name>.csv              OpenFace 2 per-frame CSVs (or <name>/<name>.csv), if made
    <data>/subtitle_chieng.csv              name, chinese, english (empty cells occur)

The clips are the video stems (the audio stems where there is no video folder), or the names of
``--names`` CSVs (label CSV, candidates CSV: column ``name``)."""
import os

from feature_extraction.base import Clip
from toolkit.errors import UserError
from toolkit.tables import read_table, sample_key

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".mpg", ".mpeg")
AUDIO_EXTS = (".wav", ".flac", ".mp3", ".m4a", ".ogg")
SUBTITLES = "subtitle_chieng.csv"
LANGUAGES = ("chinese", "english")


def _stems(folder, exts):
    """{stem: path} of the files in ``folder`` with one of ``exts`` (first extension in ``exts`` wins)."""
    if not folder or not os.path.isdir(folder):
        return {}
    found = {}
    for entry in sorted(os.listdir(folder), key=lambda e: (os.path.splitext(e)[1].lower() not in exts[:1], e)):
        stem, ext = os.path.splitext(entry)
        if ext.lower() in exts and not entry.startswith("."):
            found.setdefault(stem, os.path.join(folder, entry))
    return found


def read_subtitles(path, lang):
    """{clip: text} from the subtitle CSV's ``lang`` column; empty cells give ""."""
    if lang not in LANGUAGES:
        raise UserError(f"--lang {lang!r}: use one of {', '.join(LANGUAGES)}")
    table = read_table(path, "subtitle CSV", columns=("name", lang))
    return dict(zip(table["name"], table[lang].map(str.strip)))


def clip_names(data, names_csvs, videos, audios):
    """The clips to extract: from the --names CSVs in their order (duplicates dropped), else every
    video stem (audio stems where there is no video/ folder), sorted."""
    if names_csvs:
        seen = {}
        for path in names_csvs:
            for name in read_table(path, "names CSV")["name"]:
                seen.setdefault(name, None)
        return list(seen)
    found = sorted(videos or audios)
    if not found:
        raise UserError(f"{data}: no clips found in {os.path.join(data, 'video')} or {os.path.join(data, 'audio')} "
                        f"(files ending in {', '.join(VIDEO_EXTS[:2] + AUDIO_EXTS[:1])}); point --data at the "
                        f"release folder or list the clips with --names")
    return found


def find_openface_csv(root, name):
    """``<root>/<name>.csv`` or ``<root>/<name>/<name>.csv`` (the layout of MERTools), or None."""
    for path in (os.path.join(root, f"{name}.csv"), os.path.join(root, name, f"{name}.csv")):
        if os.path.isfile(path):
            return path
    return None


def find_clips(data, names_csvs=(), subtitles=None, lang="chinese", audio_dir=None, faces_dir=None,
               openface_dir=None):
    """Clip records for every clip to extract, with the paths that exist for it (see the module doc)."""
    if not os.path.isdir(data):
        raise UserError(f"--data {data} is not a folder; point it at the release (video/, audio/, subtitle_chieng.csv)")
    videos = _stems(os.path.join(data, "video"), VIDEO_EXTS)
    audio_dir = audio_dir or os.path.join(data, "audio")
    audios = _stems(audio_dir, AUDIO_EXTS)
    faces_dir = faces_dir or os.path.join(data, "openface_face")
    openface_dir = openface_dir or os.path.join(data, "openface")
    texts = None
    if subtitles is not None:
        texts = read_subtitles(subtitles, lang)
    clips = []
    for name in clip_names(data, names_csvs, videos, audios):
        face = os.path.join(faces_dir, name, f"{name}.npy")
        clips.append(Clip(name=sample_key(name), video=videos.get(name), audio=audios.get(name),
                          faces=face if os.path.isfile(face) else None,
                          text=None if texts is None else texts.get(name),
                          openface_csv=find_openface_csv(openface_dir, name)))
    return clips
