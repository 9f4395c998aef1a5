"""The HTML report is a generated page: parsed with html.parser, no Markdown left, the tables and
verdict badges there, images relative; the Markdown report is the same blocks."""

from __future__ import annotations

from html.parser import HTMLParser
from s1kit.eval.html import Para, Strong, Table, Verdict, from_markdown, markdown_to_html, to_html, to_markdown
from s1kit.eval.report import write_report


class Page(HTMLParser):
    """Tables (as lists of rows of cell text), badges, images, headings and all text of a page."""

    def __init__(self):
        super().__init__()
        self.tables, self.badges, self.images, self.headings, self.text, self.tags = [], [], [], [], [], []
        self._cell = self._badge = self._heading = None
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "span" and "badge" in attrs.get("class", ""):
            self._badge = [attrs["class"].split()[-1], ""]
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag in ("h1", "h2", "h3"):
            self._heading = ""
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "span" and self._badge:
            self.badges.append(tuple(self._badge))
            self._badge = None
        elif tag in ("h1", "h2", "h3"):
            self.headings.append(self._heading)
            self._heading = None
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            return
        self.text.append(data)
        for part in (self._cell, ):
            if part is not None:
                part.append(data)
        if self._badge is not None:
            self._badge[1] += data
        if self._heading is not None:
            self._heading += data


def parse(page: str) -> Page:
    p = Page()
    p.feed(page)
    p.close()
    return p


def assert_no_markdown(p: Page) -> None:
    text = "".join(p.text)
    assert "**" not in text and "|---" not in text and "`" not in text and "![" not in text
    assert not any(line.lstrip().startswith("#") for line in text.splitlines())


POINT = {"accuracy": 0.5, "ci_low": 0.25, "ci_high": 0.75, "n": 4, "mean_thinking_tokens": 12.5,
         "median_thinking_tokens": 12, "forced_end_share": 0.5, "mean_waits": 1.0, "unparsable": 0}


def results() -> dict:
    bf = {"label": "budget forcing", "control": 1.0, "scaling_per_1k_tokens": 0.0123, "performance": 0.5,
          "points": [{**POINT, "budget": 16, "waits": 0}, {**POINT, "budget": 32, "waits": 2, "accuracy": 0.75}]}
    maj = {"label": "majority_voting", "control": 1.0, "scaling_per_1k_tokens": None, "performance": 0.25,
           "points": [{**POINT, "k": 2}]}
    return {"benchmarks": {"synth:<gcd>&sort": {"points": bf["points"], "methods": {"budget_forcing": bf,
                                                                                   "majority_voting": maj}}},
            "datasets": {"synth:<gcd>&sort": {"source": "built in code", "revision": "v1", "rows": 4,
                                              "sha256": "ab" * 32}}}


def test_eval_report_page_has_its_tables_and_no_markdown(tmp_path):
    write_report(results(), tmp_path)
    page = parse((tmp_path / "report.html").read_text())
    assert_no_markdown(page)
    assert page.headings[:2] == ["Evaluation report", "synth:<gcd>&sort"]  # escaped, and read back as text
    summary, bf, maj = page.tables
    assert summary[0] == ["method", "Control %", "Scaling (points / 1k thinking tokens)", "Performance %"]
    assert summary[1:] == [["budget forcing", "100.0", "1.23", "50.0"], ["majority_voting", "100.0", "n/a", "25.0"]]
    assert bf[0][:4] == ["budget", "waits", "n", "accuracy % [95% CI]"] and [r[:2] for r in bf[1:]] == [["16", "0"], ["32", "2"]]
    assert bf[2][3] == "75.0 [25.0, 75.0]" and maj[1][:2] == ["2", "4"]
    assert page.images == ["scaling.png", "parallel_vs_sequential.png"]
    assert all((tmp_path / src).is_file() for src in page.images)  # relative, beside the page: opens from disk
    raw = (tmp_path / "report.html").read_text()
    assert "<style>" in raw and "http://" not in raw and "https://" not in raw and "<script" not in raw
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Evaluation report") and "| budget forcing | 100.0 | 1.23 | 50.0 |" in md


PIPELINE_MD = """# s1 at small scale: the embedded default

Families: gcd, sort; pool 1,234 questions.

**Smoke run**: tiny sizes that test the plumbing; the numbers mean nothing.

## The paper's findings at this scale

| finding | measured | verdict |
|---|---|---|
| budget forcing Control = 100% | 100.0% | **holds** |
| accuracy rises with the thinking cap | -1.0 points per 1k tokens [-3.0, 2.0] | **does not hold** |
| s1K selection vs random-1K (data ablation) | 40.0% vs 35.0%: +5.0 [-2.0, 9.0], p=0.210 | no significant difference |
| uses `<think>` & "quotes" | 1 | random better |

![scaling](scaling.png)
"""


def test_markdown_subset_becomes_a_page_with_verdict_badges():
    page = parse(markdown_to_html(PIPELINE_MD))
    assert_no_markdown(page)
    assert page.headings == ["s1 at small scale: the embedded default", "The paper's findings at this scale"]
    [table] = page.tables
    assert table[0] == ["finding", "measured", "verdict"] and len(table) == 5
    assert table[4][0] == 'uses <think> & "quotes"'  # code span escaped, shown as text
    assert page.badges == [("ok", "holds"), ("bad", "does not hold"), ("neutral", "no significant difference"),
                           ("bad", "random better")]
    assert "strong" in page.tags and "code" in page.tags and page.images == ["scaling.png"]


def test_blocks_render_the_same_content_both_ways():
    doc = from_markdown(PIPELINE_MD)
    assert isinstance(doc[2], Para) and doc[2].parts[0] == Strong("Smoke run")
    assert isinstance(doc[4], Table) and doc[4].rows[0][2] == [Verdict("holds")]
    again = from_markdown(to_markdown(doc))
    assert again == doc  # Markdown round trip: nothing lost or added
    assert "<script" not in to_html([Para(["<script>alert(1)</script>"])]).split("</style>")[1]

