"""The leaderboard page as a reader sees it: tiny-model runs of several specs, opened in headless Chromium.

Runs baseline, pld, oracle, sam_vskip (ViSkip) and an untrained eagle2 on the demo task through the
harness, adds a hand-made non-lossless run whose results and records carry an injected ``<script>``,
builds the page and checks in the browser: a non-blank screenshot, the scatter and heatmaps present,
the sorting script ran, no console message at all, and the injected script shown as text, not run.
"""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from _models import tiny_adapter
from _page import require_chromium, require_plots

from mmspec.harness import Harness, RunConfig
from mmspec.leaderboard import build_leaderboard, render_html
from mmspec.leaderboard.browser import open_page
from mmspec.leaderboard.plots import INSTALL_HINT
from mmspec.records import read_run
from mmspec.results import build_results

MODEL = "tiny-qwen25vl"
# (spec, spec args, sample limit): the slow drafters run on the first samples only (seconds, not minutes)
SPECS: tuple[tuple[str, dict[str, str], int | None], ...] = (
    ("baseline", {}, None),
    ("pld", {}, None),
    ("oracle", {}, None),
    ("sam_vskip", {"visual_attn_threshold": "0.2"}, 3),
    ("eagle2", {"checkpoint": "random"}, 2),
)
# Would retitle the page and add an element if it ever ran.
PAYLOAD = "<script>document.title='pwned';document.body.appendChild(document.createElement('div')).id='injected'</script>"
LOSSY_AT = 3  # first token the hand-made run gets wrong
TITLE = "mmspec leaderboard"


def make_lossy_run(model_dir: Path) -> Path:
    """A non-lossless run: pld's records with two turns corrupted from token LOSSY_AT, its results
    recomputed by the harness's own aggregation against the baseline; untrusted text everywhere."""
    run = model_dir / "lossy"
    shutil.copytree(model_dir / "pld", run)
    samples = run / "mmspec_demo" / "samples.jsonl"
    records = [json.loads(line) for line in samples.read_text(encoding="utf-8").splitlines()]
    for rec in records[:2]:
        turn = rec["turns"][0]
        turn["token_ids"][LOSSY_AT:] = [7] * len(turn["token_ids"][LOSSY_AT:])
        turn["text"] = turn["text"][:6] + PAYLOAD
    samples.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    results.update(build_results(read_run(run), read_run(model_dir / "baseline"), True))
    results["spec"] = "lossy" + PAYLOAD
    results["config"]["method"]["paper"] = PAYLOAD
    results["environment"]["torch"] = "0.0-other" + PAYLOAD  # a setting that differs: flagged
    (run / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def results_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("leaderboard_runs")
    adapter = tiny_adapter(MODEL)
    for spec, args, limit in SPECS:
        cfg = RunConfig(tasks=["mmspec_demo"], model=MODEL, spec=spec, spec_args=dict(args), output_path=out,
                        max_new_tokens=16, warmup=0, limit=limit)  # fmt: skip
        Harness(cfg, adapter=adapter).run()
    make_lossy_run(out / MODEL)
    return out


@pytest.fixture
def chromium() -> str:
    """Checked before the runs are made, so a missing browser skips (or fails) at once."""
    return require_chromium()


@pytest.fixture
def with_plots() -> None:
    require_plots()


@pytest.fixture(scope="module")
def leaderboard(results_root: Path) -> dict[str, Any]:
    return build_leaderboard(results_root)


def element(dom: str, start: str, end: str) -> str:
    """The DOM text from ``start`` to the first ``end`` after it."""
    i = dom.index(start)
    return dom[i : dom.index(end, i)]


class TableRows(HTMLParser):
    """The body rows of the table with id ``table_id``: per cell, its ``data-v`` and its text."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside, self.body = table_id, False, False
        self.rows: list[list[tuple[str | None, str]]] = []
        self.heads: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.inside = a.get("id") == self.table_id
        elif self.inside and tag == "tbody":
            self.body = True
        elif self.inside and tag == "th" and not self.body:
            self.heads.append(a)
        elif self.inside and self.body and tag == "tr":
            self.rows.append([])
        elif self.inside and self.body and tag == "td":
            self.rows[-1].append((a.get("data-v"), ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = self.body = False

    def handle_data(self, data: str) -> None:
        if self.inside and self.body and self.rows and self.rows[-1]:
            v, text = self.rows[-1][-1]
            self.rows[-1][-1] = (v, text + data)


def table_rows(dom: str, table_id: str) -> TableRows:
    parser = TableRows(table_id)
    parser.feed(dom)
    assert parser.rows, f"no rows in table {table_id}"
    return parser


def overall(lb: dict[str, Any], spec: str) -> dict[str, Any]:
    return next(e for e in lb["entries"] if e["scope"] == "overall" and e["spec"].startswith(spec))


def run_of(lb: dict[str, Any], spec: str) -> dict[str, Any]:
    return next(r for r in lb["runs"] if r["spec"].startswith(spec))


def test_json_holds_what_the_page_shows(leaderboard: dict[str, Any]) -> None:
    lb = leaderboard
    assert lb["schema_version"] == 2
    ranking = [e for e in lb["entries"] if e["scope"] == "overall"]
    assert len(ranking) == len(SPECS) + 1 and ranking == lb["entries"][: len(ranking)]  # overall rows first
    speedups = [e["speedup_global"] for e in ranking]
    assert speedups == sorted(speedups, reverse=True) and [e["rank"] for e in ranking] == list(range(1, 7))
    # honesty flags
    assert overall(lb, "eagle2")["trained"] is False and "untrained_draft" in overall(lb, "eagle2")["flags"]
    assert all("timing_not_meaningful" in e["flags"] and e["timing_meaningful"] is False for e in ranking)
    for e in ranking:
        assert ("timing_noise" in e["flags"]) is (e["speedup_global"] > 1.1 * e["mat"])
    lossy = overall(lb, "lossy")
    assert lossy["lossless"] is False and lossy["n_mismatches"] == 2 and "not_lossless" in lossy["flags"]
    assert overall(lb, "pld")["lossless"] is True and "not_lossless" not in overall(lb, "pld")["flags"]
    assert overall(lb, "sam_vskip")["skip_share"] > 0 and overall(lb, "pld")["skip_share"] == 0
    assert 0 < overall(lb, "pld")["verify_share"] < 1
    # acceptance by depth, from the per-round records: none for the baseline; the oracle drafts k=4
    assert run_of(lb, "baseline")["acceptance_by_depth"] is None
    oracle = run_of(lb, "oracle")["acceptance_by_depth"]
    assert len(oracle["p_at_least"]) == 4 and oracle["p_at_least"][0] == 1.0 and oracle["rounds"] > 0
    assert all(a >= b for a, b in zip(oracle["p_at_least"], oracle["p_at_least"][1:]))
    # first divergences: both corrupted turns, at the corrupted position, with both texts around it
    div = run_of(lb, "lossy")["divergences"]
    assert [(d["task"], d["turn"], d["position"]) for d in div] == [("mmspec_demo", 0, LOSSY_AT)] * 2
    assert div[0]["tokens"]["run"][LOSSY_AT - div[0]["tokens"]["start"]] == 7
    assert div[0]["text"]["run"].startswith(PAYLOAD[:20]) and div[0]["text"]["baseline"]
    assert run_of(lb, "pld")["divergences"] == [] and run_of(lb, "pld")["n_divergences"] == 0
    # the settings that differ between compared runs (not the per-method ones): the sample limit of
    # the slow drafters, and the torch version the hand-made run claims
    diffs = {
        d["key"]: {v["label"]: v["value"] for v in d["values"]}
        for d in lb["models"][0]["setting_differences"]
    }
    assert list(diffs) == ["config.limit", "environment.torch"]
    assert diffs["config.limit"][f"{MODEL}/eagle2"] == "2" and diffs["config.limit"][f"{MODEL}/pld"] == "null"
    assert diffs["environment.torch"][f"{MODEL}/lossy{PAYLOAD}"].startswith("0.0-other")


def test_page_in_headless_chromium(
    chromium: str, with_plots: None, leaderboard: dict[str, Any], tmp_path: Path
) -> None:
    page = tmp_path / "leaderboard.html"
    page.write_text(render_html(leaderboard, title=TITLE), encoding="utf-8")
    view = open_page(page, screenshot=tmp_path / "page.png", size=(1280, 2400), chromium=chromium)

    assert view.console == []  # no script error, no blocked script or resource (CSP), nothing logged

    from PIL import Image, ImageStat

    with Image.open(view.screenshot) as shot:
        assert shot.size == (1280, 2400)
        grey = shot.convert("L")
        assert ImageStat.Stat(grey).stddev[0] > 20  # not blank
        assert len(shot.convert("RGB").getcolors(1 << 24) or []) > 100  # text, badges, plot colours

    dom = view.dom
    for fig in ("m0-scatter", "m0-heatmap-speedup", "m0-heatmap-mat", "m0-acceptance"):
        assert re.search(rf'<figure id="{fig}"><svg [^>]*class="plot-svg"', dom), fig
    assert "oracle efficiency" in dom  # the oracle line is drawn when an oracle run is present
    heatmap = element(dom, '<figure id="m0-heatmap-speedup"', "</figure>")
    for category in ("general", "text vqa", "captioning", "chart", "reasoning", "multi-turn"):  # may wrap
        assert category in heatmap
    for table in ("m0-ranking", "m0-category-pivot", "m0-task-pivot", "m0-acceptance-table", "m0-settings"):
        assert re.search(rf'<table class="[^"]*" id="{table}"', dom), table
    ids = re.findall(r'\sid="([^"]*)"', dom)
    assert len(ids) == len(set(ids)) > 50  # the figures' own ids are prefixed: no clashes between them
    sortable = len(re.findall(r'<table class="sortable[^"]*"', dom))
    assert sortable >= 5 and dom.count('data-sortable="ready"') == sortable  # the page's own script ran

    # the injected script: shown as text in the table, the plots and the divergence view, never run
    assert f"<title>{TITLE}</title>" in dom and 'id="injected"' not in dom and "pwned</title>" not in dom
    literal = "&lt;script&gt;document.title="
    ranking = element(dom, 'id="m0-ranking"', "</table>")
    assert literal in ranking and literal in element(dom, 'id="m0-divergences"', "</table>")
    assert literal in element(dom, '<figure id="m0-scatter"', "</figure>")  # a legend label, cut short
    assert dom.lower().count("<script") == 1  # the sorting script, nothing injected

    # honesty flags and badges are on the page
    assert "NOT lossless" in ranking and "untrained draft" in ranking and "timing not meaningful" in dom
    assert "⚠ config.limit" in dom and "⚠ environment.torch" in dom


def test_sorting_in_the_browser(chromium: str, leaderboard: dict[str, Any], tmp_path: Path) -> None:
    page = tmp_path / "sorted.html"
    page.write_text(render_html(leaderboard, with_plots=False), encoding="utf-8")
    as_built = table_rows(page.read_text(encoding="utf-8"), "m0-ranking")
    assert [h["data-type"] for h in as_built.heads][:5] == ["num", "text", "num", "num", "num"]
    global_ = [float(r[2][0]) for r in as_built.rows]
    assert global_ == sorted(global_, reverse=True)  # ranked by global speedup as built

    # a click on MAT (column 4), asked for by the link: largest first, rows move whole
    view = open_page(page, chromium=chromium, fragment="sort=m0-ranking:4")
    assert view.console == []
    by_mat = table_rows(view.dom, "m0-ranking")
    mats = [float(r[4][0]) for r in by_mat.rows]
    assert mats == sorted(mats, reverse=True)
    assert by_mat.heads[4].get("aria-sort") == "descending"  # set by the script's sort, nothing else
    assert sorted(tuple(r) for r in by_mat.rows) == sorted(tuple(r) for r in as_built.rows)

    # text columns sort alphabetically
    view = open_page(page, chromium=chromium, fragment="sort=m0-ranking:1")
    names = [r[1][1] for r in table_rows(view.dom, "m0-ranking").rows]
    assert names == sorted(names, key=str.lower) and names[0] == "baseline"


def test_page_without_matplotlib_keeps_its_tables(
    chromium: str, leaderboard: dict[str, Any], tmp_path: Path
) -> None:
    page = tmp_path / "tables.html"
    page.write_text(render_html(leaderboard, with_plots=False), encoding="utf-8")
    view = open_page(page, chromium=chromium)
    assert view.console == []
    assert "<svg" not in view.dom and 'id="plots-missing"' in view.dom
    assert INSTALL_HINT.replace('"', "&quot;") in view.dom or INSTALL_HINT in view.dom
    assert 'id="m0-ranking"' in view.dom and 'id="m0-acceptance-table"' in view.dom
    assert view.dom.count('data-sortable="ready"') >= 5


def test_readme_shows_a_screenshot_of_the_page() -> None:
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "](docs/leaderboard.png)" in readme
    assert "python scripts/make_leaderboard_screenshot.py --out docs/leaderboard.png" in readme
    png = root / "docs" / "leaderboard.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 200_000
    assert (root / "scripts" / "make_leaderboard_screenshot.py").is_file()
