"""The README and the manual in docs/: every relative link reaches a file, every #anchor a heading of its
target (GitHub's rule for heading ids), and the README's table links every page of the manual."""
import glob
import os
import re

from tests.conftest import REPO

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def pages():
    return [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))


def prose_lines(path):
    """(line number, text) of the lines outside fenced code blocks, with inline code removed."""
    inside = False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if FENCE.match(line):
                inside = not inside
                continue
            if not inside:
                yield number, line


def slug(heading):
    """GitHub's id of a heading: lowercase, punctuation dropped except '-' and '_', spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = "".join(ch for ch in text.lower() if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors(path):
    """Every heading id of ``path``; a repeated heading gets -1, -2, ... as on GitHub."""
    seen, ids = {}, set()
    for _, line in prose_lines(path):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            ids.add(f"{base}-{seen[base]}" if base in seen else base)
            seen[base] = seen.get(base, 0) + 1
    return ids


def links(path):
    """(line number, target) of every link outside code (inline code spans are not links)."""
    for number, line in prose_lines(path):
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            yield number, target


def relative(target):
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)


def test_slug_follows_githubs_rule():
    assert slug("Frame-level features (`-FRM`)") == "frame-level-features--frm"
    assert slug("Does the sweep rank right? `benchmarks/bench_ranking.py`") == \
        "does-the-sweep-rank-right-benchmarksbench_rankingpy"
    assert slug("train.py") == "trainpy"


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for path in pages():
        for number, target in links(path):
            if not relative(target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            where = f"{os.path.relpath(path, REPO)}:{number}: {target}"
            if not os.path.exists(dest):
                broken.append(f"{where} (no file {os.path.relpath(dest, REPO)})")
            elif anchor and (not dest.endswith(".md") or anchor not in anchors(dest)):
                broken.append(f"{where} (no heading #{anchor} in {os.path.relpath(dest, REPO)})")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_readme_table_links_every_page_of_the_manual():
    readme = os.path.join(REPO, "README.md")
    in_table = {os.path.normpath(t.partition("#")[0]) for n, t in links(readme)
                if relative(t) and t.startswith("docs/")
                and open(readme, encoding="utf-8").read().splitlines()[n - 1].lstrip().startswith("|")}
    manual = {os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md"))}
    assert manual, "docs/ holds no pages"
    assert manual <= in_table, f"pages missing from the README's table: {sorted(manual - in_table)}"


def test_a_broken_link_is_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [bad](#nothing) `[code](#ignored)`\n```\n[x](#fenced)\n```\n",
                    encoding="utf-8")
    assert [t for _, t in links(str(page))] == ["#title", "#nothing"]
    assert anchors(str(page)) == {"title"}
