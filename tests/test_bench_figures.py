"""The README's performance headline is what bench/headline.py renders from the committed raw results
(bench/deployed.json, results.json, latency.json): no figure there is typed by hand or left behind by a re-run."""

import sys
from pathlib import Path

BENCH = Path(__file__).parents[1] / "bench"


def test_readme_headline_is_rendered_from_the_committed_results():
    sys.path.insert(0, str(BENCH))
    try:
        import headline
    finally:
        sys.path.remove(str(BENCH))
    assert headline.readme_block(headline.README.read_text()) == headline.render(), (
        "README.md's performance headline differs from the results: run .venv/bin/python bench/headline.py --write"
    )
