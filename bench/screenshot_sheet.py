"""The README's picture of a contact sheet, made again from generated photos.

    python bench/screenshot_sheet.py                      # writes docs/contact-sheet.png
    python bench/screenshot_sheet.py --output /tmp/x.png --width 1000 --open-first

It writes the generated collection of the browser test (tests/support/browser.py: photos drawn
with PIL, faces stored where they are drawn, one stored sideways with EXIF orientation 6, one
unreadable) to ``$TMPDIR/indexer-sheet/photos``, indexes it through ``Store.write`` into a
SQLite file beside it, renders ``indexer search smiling --format html`` with the API, and takes
a screenshot of the whole page in headless Chromium (installed first when missing, as the tests
do). The PNG is reduced to 256 colours so the README's picture stays small (< 150 KB). No
photo of a real person is used: the README's picture must be one anybody may publish.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from indexer import api  # noqa: E402
from indexer.store.repository import Store  # noqa: E402
from tests.support.browser import PHOTOS, Browser, ensure_chromium, write_collection  # noqa: E402

#: Most a README picture may weigh.
MAX_BYTES = 150_000


def build_sheet(folder: Path) -> Path:
    """The generated photos indexed under ``folder`` and their ``smiling`` contact sheet."""
    shutil.rmtree(folder, ignore_errors=True)
    db_url = f"sqlite:///{folder / 'index.db'}"
    with Store.open(db_url) as store:
        write_collection(folder / "photos", PHOTOS, store)
    config = api.load_config(flags={"db_url": db_url})
    return api.contact_sheet(config, "smiling", output=folder / "sheet.html").path


def screenshot(sheet: Path, width: int, open_first: bool) -> Image.Image:
    """The whole page at ``width`` CSS px (the first image's large view open with ``open_first``)."""
    browser = Browser(ensure_chromium())
    try:
        with browser.page() as page:
            page.set_viewport(width, 600)
            page.goto(sheet.as_uri())
            if open_first:
                page.click("figure.cs-item button.cs-open")
            height = int(page.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
            page.set_viewport(width, height)
            return Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    finally:
        browser.close()


def small_png(image: Image.Image) -> bytes:
    """256 colours, optimised: a screenshot of flat UI and drawn photos loses nothing visible."""
    buffer = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "contact-sheet.png")
    parser.add_argument("--width", type=int, default=800, help="viewport width in CSS px (default 800)")
    parser.add_argument("--open-first", action="store_true", help="show the first image's large view")
    args = parser.parse_args()

    sheet = build_sheet(Path(tempfile.gettempdir()) / "indexer-sheet")
    data = small_png(screenshot(sheet, args.width, args.open_first))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(f"{args.output}: {len(data):,} bytes (sheet: {sheet})")
    if len(data) > MAX_BYTES:
        print(f"larger than {MAX_BYTES:,} bytes: use a smaller --width", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
