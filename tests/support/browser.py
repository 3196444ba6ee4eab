"""Headless Chromium for tests that must see a page as a browser renders it (the contact sheet).

Debian's ``chromium`` package is the browser: :func:`ensure_chromium` finds it, or installs it
with ``apt-get`` when the tests run as root (CI does, on a machine that starts without it), under
a file lock so parallel test sessions install it once, and otherwise says precisely why it
cannot be had (the tests then skip with that reason).

The driver is the Chrome DevTools Protocol over one websocket (``websocket-client``): no
WebDriver binary, no browser download, and direct access to what the tests assert on - the DOM
through ``Runtime.evaluate``, screenshots, real mouse events and every network request the page
makes (``Network.requestWillBeSent``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import websocket  # websocket-client (a test dependency)

#: Where Debian installs the browser; PATH is searched too.
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
#: A cold ``apt-get install chromium`` downloads ~100 MB; another session may hold the lock meanwhile.
INSTALL_TIMEOUT_S = 900.0
INSTALL_LOCK = Path(tempfile.gettempdir()) / "indexer-tests-chromium-install.lock"
#: Headless on this kind of machine: no sandbox (root in a container), no GPU, no background
#: traffic of the browser's own (updates, sync, QUIC probes) so the network log holds only the page's.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
    "about:blank",
)
START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 30.0


class ChromiumUnavailable(Exception):
    """Chromium is not installed and cannot be installed here; the message says why."""


def find_chromium() -> str | None:
    for path in CHROMIUM_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium") or shutil.which("chromium-browser")


def ensure_chromium() -> str:
    """The browser's path, installing Debian's ``chromium`` first when it is missing."""
    found = find_chromium()
    if found:
        return found
    _check_can_install()
    with _install_lock():
        found = find_chromium()  # another session may have installed it while we waited
        if found:
            return found
        _apt_install()
    found = find_chromium()
    if not found:
        raise ChromiumUnavailable("apt-get installed chromium but no chromium executable is on PATH")
    return found


def _check_can_install() -> None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise ChromiumUnavailable("chromium is not installed and installing it needs root (run: apt-get install chromium)")
    if shutil.which("apt-get") is None:
        raise ChromiumUnavailable("chromium is not installed and this machine has no apt-get to install it")


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    """An exclusive lock on a file in /tmp, so concurrent test sessions run one apt-get."""
    with open(INSTALL_LOCK, "w") as handle:
        deadline = time.monotonic() + INSTALL_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ChromiumUnavailable(f"another process held {INSTALL_LOCK} for {INSTALL_TIMEOUT_S:.0f} s") from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    # DPkg::Lock::Timeout: wait for dpkg's own lock (an unattended upgrade, another installer).
    command = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=300", *args]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(
            command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise ChromiumUnavailable(f"`{' '.join(command)}` took more than {INSTALL_TIMEOUT_S:.0f} s") from None


def _apt_install() -> None:
    """``apt-get install chromium``; on failure refresh the package lists once and retry
    (a fresh machine may have none, or stale ones naming versions the mirror dropped)."""
    result = _apt("install", "-y", "chromium")
    if result.returncode != 0:
        update = _apt("update")
        if update.returncode != 0:
            raise ChromiumUnavailable(f"chromium is not installed and apt-get update failed: {_last_line(update)}")
        result = _apt("install", "-y", "chromium")
    if result.returncode != 0:
        raise ChromiumUnavailable(f"chromium is not installed and apt-get install chromium failed: {_last_line(result)}")


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr or result.stdout or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit code {result.returncode}"


class CDPError(Exception):
    """A DevTools command answered with an error, or the page threw."""


@dataclass
class Connection:
    """One DevTools websocket: numbered commands, their answers, and the events in between."""

    socket: Any
    events: list[dict[str, Any]] = field(default_factory=list)
    _next_id: int = 0

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        answer = self._read_until(lambda m: m.get("id") == message["id"], COMMAND_TIMEOUT_S, method)
        if "error" in answer:
            raise CDPError(f"{method}: {answer['error'].get('message')} {answer['error'].get('data', '')}".strip())
        result: dict[str, Any] = answer.get("result", {})
        return result

    def wait_event(self, method: str, session: str | None, timeout: float) -> dict[str, Any]:
        """The first event ``method`` of ``session`` not yet waited for (already received or to come)."""
        def wanted(m: dict[str, Any]) -> bool:
            return m.get("method") == method and m.get("sessionId") == session

        for index, event in enumerate(self.events):
            if wanted(event):
                return self.events.pop(index)
        self._read_until(wanted, timeout, method)
        return self.events.pop()

    def _dismiss_dialog(self, session: str | None) -> None:
        """Close an alert/confirm/prompt at once (its answer is not awaited): an open dialog
        blocks the page, so a test would time out instead of failing on what opened it."""
        self._next_id += 1
        message = {"id": self._next_id, "method": "Page.handleJavaScriptDialog", "params": {"accept": False}}
        self.socket.send(json.dumps({**message, "sessionId": session} if session else message))

    def _read_until(self, done: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CDPError(f"no answer to {what} within {timeout:.0f} s")
            self.socket.settimeout(remaining)
            try:
                message: dict[str, Any] = json.loads(self.socket.recv())
            except websocket.WebSocketTimeoutException:
                raise CDPError(f"no answer to {what} within {timeout:.0f} s") from None
            if "id" not in message:
                self.events.append(message)
                if message.get("method") == "Page.javascriptDialogOpening":
                    self._dismiss_dialog(message.get("sessionId"))
            if done(message):
                return message


class Page:
    """One tab: navigate, evaluate JavaScript, click, take screenshots, read its network log."""

    def __init__(self, connection: Connection, session: str):
        self._cdp = connection
        self.session = session
        for domain in ("Page", "Runtime", "Network"):
            self.send(f"{domain}.enable")

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._cdp.send(method, params, self.session)

    def set_viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        """Emulate a screen: ``mobile`` honours the page's meta viewport as a phone does."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )
        self.send("Emulation.setTouchEmulationEnabled", {"enabled": mobile})

    def goto(self, url: str, timeout: float = 30.0) -> None:
        """Load ``url`` and wait for its load event (images included)."""
        answer = self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise CDPError(f"navigating to {url}: {answer['errorText']}")
        self._cdp.wait_event("Page.loadEventFired", self.session, timeout)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` (awaited when it is a promise); a page exception raises."""
        answer = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise CDPError(f"{expression[:80]!r} threw: {details.get('exception', {}).get('description') or details.get('text')}")
        return answer.get("result", {}).get("value")

    def click(self, selector: str) -> None:
        """A real left click (mouse pressed and released) at the centre of the first ``selector``
        element, scrolled into view first - what a user's click does, listeners and default action."""
        box = self.evaluate(
            f"""(() => {{
                const el = document.querySelector({json.dumps(selector)});
                if (!el) return null;
                el.scrollIntoView({{block: "center", inline: "center"}});
                const r = el.getBoundingClientRect();
                return {{x: r.left + r.width / 2, y: r.top + r.height / 2}};
            }})()"""
        )
        if box is None:
            raise CDPError(f"no element matches {selector!r}")
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )

    def press_key(self, key: str, code: str, key_code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": code, "windowsVirtualKeyCode": key_code})

    def screenshot(self) -> bytes:
        """A PNG of the viewport (set the viewport to the page's height for all of it)."""
        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for since it was opened (main document included)."""
        return [e["params"]["request"]["url"] for e in self._events("Network.requestWillBeSent")]

    def dialogs(self) -> list[str]:
        """Messages of the JavaScript dialogs (alert, confirm, prompt) the page opened."""
        return [e["params"].get("message", "") for e in self._events("Page.javascriptDialogOpening")]

    def _events(self, method: str) -> list[dict[str, Any]]:
        return [e for e in self._cdp.events if e.get("method") == method and e.get("sessionId") == self.session]

    def exceptions(self) -> list[str]:
        """Uncaught JavaScript exceptions the page threw."""
        details = [e["params"]["exceptionDetails"] for e in self._events("Runtime.exceptionThrown")]
        return [d.get("exception", {}).get("description") or d.get("text", "") for d in details]


class Browser:
    """A headless Chromium process with a fresh profile, driven over DevTools; close() ends it."""

    def __init__(self, executable: str):
        self._home = tempfile.TemporaryDirectory(prefix="indexer-chromium-")
        self._profile = Path(self._home.name) / "profile"
        self._log = open(Path(self._home.name) / "chromium.log", "wb")  # a file: a full pipe would stall the browser
        self.process = subprocess.Popen(
            [executable, *HEADLESS_FLAGS[:-1], f"--user-data-dir={self._profile}", HEADLESS_FLAGS[-1]],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            port, path = self._devtools_address()
            socket = websocket.create_connection(
                f"ws://127.0.0.1:{port}{path}", timeout=COMMAND_TIMEOUT_S, suppress_origin=True
            )
        except BaseException:
            self._stop(grace=0)
            raise
        self._cdp = Connection(socket)

    def _devtools_address(self) -> tuple[str, str]:
        """The port and browser path Chromium writes to DevToolsActivePort once it listens."""
        marker = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (Path(self._home.name) / "chromium.log").read_text(errors="replace")
                raise ChromiumUnavailable(f"chromium exited with {self.process.returncode}: {error.strip()[-500:]}")
            lines = marker.read_text().split("\n") if marker.exists() else []
            if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                return lines[0].strip(), lines[1].strip()
            time.sleep(0.05)
        raise ChromiumUnavailable(f"chromium did not open its DevTools port within {START_TIMEOUT_S:.0f} s")

    @contextlib.contextmanager
    def page(self) -> Iterator[Page]:
        """A new tab, closed afterwards."""
        target = self._cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            yield Page(self._cdp, session)
        finally:
            self._cdp.send("Target.closeTarget", {"targetId": target})
            self._cdp.events = [e for e in self._cdp.events if e.get("sessionId") != session]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._cdp.send("Browser.close")
        with contextlib.suppress(Exception):
            self._cdp.socket.close()
        self._stop()

    def _stop(self, grace: float = 10.0) -> None:
        """End the browser process this object started (by its own handle), then its files."""
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.process.wait(timeout=10)
        self._log.close()
        self._home.cleanup()


# --- A generated collection to render: photos drawn with PIL, faces stored where they are drawn ---


@dataclass(frozen=True)
class Photo:
    """One generated photo: its name, its size as shown (upright), and its faces as
    ``(Left, Top, Width, Height)`` fractions of that upright image with whether each smiles."""

    name: str
    size: tuple[int, int]
    faces: tuple[tuple[tuple[float, float, float, float], bool], ...]
    #: EXIF orientation of the stored file (6: stored lying on its side, shown rotated 90° clockwise).
    orientation: int | None = None
    #: In S3 (needs a client) rather than in the local folder.
    in_s3: bool = False
    #: Its bytes are replaced by garbage after it is indexed, so rendering it fails.
    unreadable: bool = False

    @property
    def smiling_faces(self) -> int:
        return sum(1 for _, smiling in self.faces if smiling)


#: Upright top-left marker of every photo (the test finds it where the sheet shows the corner).
MARKER = (230, 20, 140)
MARKER_FRACTION = 0.12


def draw_photo(photo: Photo, seed: int) -> bytes:
    """A JPEG of ``photo``: a coloured backdrop, a marker square in the upright top-left corner,
    and a simple face (skin oval, eyes, a mouth that smiles or not) inside each box; stored
    rotated 90° counter-clockwise with EXIF orientation 6 when asked, as a phone held upright does."""
    import io
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    width, height = photo.size
    top_colour = (rng.randrange(40, 120), rng.randrange(80, 160), rng.randrange(120, 220))
    image = Image.new("RGB", photo.size, top_colour)
    draw = ImageDraw.Draw(image)
    for y in range(height // 2, height, 4):  # a ground of another colour
        draw.rectangle((0, y, width, y + 4), fill=(90 + y * 60 // height, 120, 70))
    side = int(min(width, height) * MARKER_FRACTION)
    draw.rectangle((0, 0, side, side), fill=MARKER)
    for (left, top, box_w, box_h), smiling in photo.faces:
        x0, y0, x1, y1 = left * width, top * height, (left + box_w) * width, (top + box_h) * height
        draw.ellipse((x0, y0, x1, y1), fill=(224, 180, 150), outline=(120, 80, 60), width=2)
        w, h = x1 - x0, y1 - y0
        for eye_x in (0.32, 0.68):
            draw.ellipse((x0 + w * (eye_x - 0.07), y0 + h * 0.33, x0 + w * (eye_x + 0.07), y0 + h * 0.43), fill=(40, 30, 30))
        mouth = (x0 + w * 0.3, y0 + h * 0.55, x0 + w * 0.7, y0 + h * 0.8)
        if smiling:
            draw.arc(mouth, 20, 160, fill=(150, 30, 40), width=max(2, int(h * 0.05)))
        else:
            draw.line((mouth[0], y0 + h * 0.7, mouth[2], y0 + h * 0.7), fill=(150, 30, 40), width=max(2, int(h * 0.04)))
    buffer = io.BytesIO()
    if photo.orientation == 6:
        exif = Image.Exif()
        exif[0x0112] = 6
        image.rotate(90, expand=True).save(buffer, format="JPEG", quality=88, exif=exif)
    else:
        image.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


#: The collection the browser test and the README screenshot render; ``smiling`` matches all but
#: ``harbour-no-smile.jpg`` (its one face does not smile).
PHOTOS: tuple[Photo, ...] = (
    Photo("beach-pair.jpg", (640, 427), (((0.18, 0.22, 0.16, 0.3), True), ((0.58, 0.2, 0.15, 0.28), True))),
    Photo(
        "family-of-three.jpg",
        (900, 600),
        (((0.08, 0.25, 0.14, 0.24), True), ((0.42, 0.18, 0.15, 0.26), False), ((0.74, 0.3, 0.13, 0.22), True)),
    ),
    Photo("phone-portrait.jpg", (360, 600), (((0.3, 0.2, 0.42, 0.3), True),), orientation=6),
    Photo("harbour-no-smile.jpg", (600, 400), (((0.4, 0.25, 0.18, 0.3), False),)),
    Photo("tall-window.jpg", (300, 520), (((0.25, 0.15, 0.5, 0.3), True),)),
    Photo("broken-since-indexed.jpg", (500, 375), (((0.3, 0.3, 0.2, 0.3), True),), unreadable=True),
)
#: S3 keys a user may well have: markup and quotes in the name must show as text.
HOSTILE_PHOTOS: tuple[Photo, ...] = (
    Photo("party/<script>alert(1)</script>.jpg", (480, 320), (((0.35, 0.2, 0.25, 0.4), True),), in_s3=True),
    Photo('party/<img src=x onerror="window.__xss=1"> & "Tom".jpg', (320, 480), (((0.2, 0.3, 0.5, 0.3), True),), in_s3=True),
)


def write_collection(folder: Path, photos: tuple[Photo, ...], store: Any, *, s3: Any = None, bucket: str = "") -> dict[str, Photo]:
    """Write each photo (to ``folder``, or to ``bucket`` through ``s3``) and its faces through
    ``Store.write`` as an engine would have stored them; returns the photos by URI."""
    import hashlib

    from indexer.core import Analysis, ImageRef
    from indexer.store.repository import ImageOutcome
    from tests.support.faces import face_detail
    from tests.support.search_data import REKOGNITION

    folder.mkdir(parents=True, exist_ok=True)
    by_uri: dict[str, Photo] = {}
    outcomes = []
    for seed, photo in enumerate(photos):
        data = draw_photo(photo, seed)
        if photo.in_s3:
            s3.put_object(Bucket=bucket, Key=photo.name, Body=data, ContentType="image/jpeg")
            uri = f"s3://{bucket}/{photo.name}"
        else:
            uri = str(folder / photo.name)
            Path(uri).write_bytes(data)
        faces = [
            face_detail(box=box, smile=smiling, age=(25 + 7 * i, 33 + 7 * i), gender="Female" if i % 2 else "Male",
                        emotion="HAPPY" if smiling else "CALM", eyeglasses=i == 1)
            for i, (box, smiling) in enumerate(photo.faces)
        ]
        ref = ImageRef(uri=uri, size=len(data), fingerprint=hashlib.md5(data).hexdigest())
        outcomes.append(ImageOutcome(ref=ref, engine="rekognition", analysis=Analysis(faces, *photo.size)))
        by_uri[uri] = photo
    store.record_engine("rekognition", REKOGNITION)
    store.write(outcomes, store.begin_run(str(folder), "rekognition"))
    for uri, photo in by_uri.items():
        if photo.unreadable:
            Path(uri).write_bytes(b"\xff\xd8\xff\xe0 not a JPEG any more")
    return by_uri
