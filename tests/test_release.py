"""The release facts agree: the package version, the citation file and the changelog."""
import re
from pathlib import Path

import hopfield_lab

ROOT = Path(__file__).resolve().parents[1]


def test_version_citation_and_changelog_agree():
    cff = (ROOT / "CITATION.cff").read_text()
    version = re.search(r"^version:\s*(\S+)", cff, re.M).group(1)
    released = re.search(r"^date-released:\s*(\S+)", cff, re.M).group(1)
    assert version == hopfield_lab.__version__, (
        f"CITATION.cff says {version}, hopfield_lab/_version.py says {hopfield_lab.__version__}")
    log = (ROOT / "CHANGELOG.md").read_text()
    heads = re.findall(r"^## \[([^\]]+)\](?: - (\S+))?", log, re.M)
    assert heads[0] == ("Unreleased", ""), "CHANGELOG.md starts with an [Unreleased] section"
    assert heads[1] == (version, released), (
        f"the newest release in CHANGELOG.md is {heads[1]}, CITATION.cff says {(version, released)}")
