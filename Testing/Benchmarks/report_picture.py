"""The picture of `mmreg batch`'s HTML report in docs/cohorts.md: Resources/Screenshots/batch_report.png.

Runs the test cohort (Testing/Python/cohort_data.py: 6 phantom CT/MR pairs at poses up to 180 degrees,
a left-right mirrored MR header, an image of no anatomy and an unreadable file) through ``run_batch``
with 2 warm workers, then renders the top of ``report.html`` with MuPDF, a layout engine, not a browser:
a browser shows the same table with its own fonts.

Usage: python Testing/Benchmarks/report_picture.py [--output PNG] [--keep DIR | --report report.html]
(``--keep`` runs the cohort into DIR and keeps it; ``--report`` only renders an existing report.)
Needs PyMuPDF (``pip install pymupdf``), which nothing else in the project uses.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import bench_paths  # first: the library and the test-data makers on sys.path
import numpy as np

ROOT = bench_paths.ROOT


GOOD = 6
PAGE_PT = (1000, 1250)  # width, height of the rendered page (points); the top rows of the report
DPI = 80


def render(report: Path, output: Path) -> None:
    """The first page of ``report`` (HTML, images inline) as a PNG."""
    import pymupdf

    story = pymupdf.Story(html=report.read_text(encoding="utf-8"))
    page = pymupdf.Rect(0, 0, *PAGE_PT)
    pdf = output.with_suffix(".pdf")
    writer = pymupdf.DocumentWriter(str(pdf))
    device = writer.begin_page(page)
    story.place(page + (24, 24, -24, -24))
    story.draw(device)
    writer.end_page()
    writer.close()
    with pymupdf.open(str(pdf)) as document:
        pixels = document[0].get_pixmap(dpi=DPI)
        rows = np.frombuffer(pixels.samples, np.uint8).reshape(pixels.height, pixels.width, pixels.n)
        inked = np.flatnonzero((rows < 250).any(axis=(1, 2)))
        height_pt = (inked[-1] + 24) * 72 / DPI if len(inked) else page.y1  # down to the last row drawn
        document[0].get_pixmap(dpi=DPI, clip=pymupdf.Rect(0, 0, page.x1, height_pt)).save(str(output))
    pdf.unlink()


def _run_cohort(study: Path) -> Path:
    """The test cohort registered into ``study/registered``; returns its report.html."""
    from cohort_data import write_cohort
    from MultimodalRegistrationLib.process.batch import run_batch

    manifest, _ = write_cohort(study / "inputs", GOOD)
    result = run_batch(manifest, study / "registered", workers=2)
    print(f"{len(result.records)} cases, {len(result.failed)} failed")
    return study / "registered" / "report.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "Resources" / "Screenshots" / "batch_report.png")
    parser.add_argument("--keep", type=Path, help="run the cohort into this folder and keep it")
    parser.add_argument("--report", type=Path, help="render this report.html; run nothing")
    args = parser.parse_args(argv)
    try:
        import pymupdf  # noqa: F401
    except ImportError:
        print("report_picture.py needs PyMuPDF to render HTML: pip install pymupdf", file=sys.stderr)
        return 2
    if args.report:
        render(args.report, args.output)
    else:
        with tempfile.TemporaryDirectory(prefix="mmreg-") as scratch:
            study = (args.keep or Path(scratch)) / "study"
            report = _run_cohort(study)
            render(report, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
