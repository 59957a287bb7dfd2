"""Input sources of ``ssd-detect``: image files, folders, glob patterns, video files, cameras and streams.

:func:`resolve_sources` turns what a user typed into a list of :class:`Source`; :class:`VideoReader`
reads the frames of a video file, camera or stream (anything ``cv2.VideoCapture`` opens) in
batches, with each frame's index and time.
"""

from __future__ import annotations

import glob
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import unquote, urlparse

import cv2
import numpy as np

from .errors import LocatedError
from .images import IMAGE_SUFFIXES, missing_file_problem

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".asf", ".flv", ".ts")
# "file" lets a local file be given as a URL; the others are network protocols FFmpeg reads.
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt", "file")
DEFAULT_FPS = 30.0  # written when a source does not report its frame rate (many cameras and streams)
_GLOB_CHARACTERS = re.compile(r"[*?\[]")


class VideoReadError(LocatedError):
    """A video file, camera or stream cannot be opened, or stops delivering frames before its end."""


@dataclass(frozen=True)
class Source:
    """One input: ``kind`` is "image", "video" (a file), "camera" (a device index) or "stream" (a URL).

    ``location`` is the file path, the URL or the device index as text.
    """

    kind: str
    location: str

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    def name_path(self) -> Path:
        """A path whose stem names this source's results: the file itself, ``camera<i>``, or the
        URL's last path part (its host when the path is empty), made safe as a file name; a
        ``file://`` URL's file."""
        if self.kind in ("image", "video"):
            return Path(self.location)
        if self.kind == "camera":
            return Path(f"camera{self.location}")
        url = urlparse(self.location)
        if url.scheme.lower() == "file":  # the file itself, so that its results never replace it
            return Path(unquote(url.path))
        last = Path(unquote(url.path)).stem or url.hostname or "stream"
        return Path(re.sub(r"[^A-Za-z0-9._-]+", "_", last).strip("._") or "stream")


def resolve_sources(inputs: Sequence[str], recursive: bool = True) -> tuple[list[Source], list[LocatedError]]:
    """The sources named by ``inputs``, each once, in order; and a problem per pattern that matches nothing.

    Each input is, in this order of checks: an existing file or folder; a URL (``rtsp://``,
    ``http(s)://``, ``file://``, ...: a stream); a whole number (a camera's device index); a glob
    pattern (``data/**/*.jpg``, expanded with ``recursive=True``); else a file (missing: it is
    reported when read). Files are videos by their suffix (:data:`VIDEO_SUFFIXES`), images otherwise;
    a folder gives its image and video files, searched through subfolders when ``recursive``.
    """
    sources: list[Source] = []
    problems: list[LocatedError] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            sources.extend(_file_source(p) for p in list_folder(path, recursive))
        elif path.exists():
            sources.append(_file_source(path))
        elif urlparse(item).scheme.lower() in STREAM_SCHEMES:
            sources.append(Source("stream", item))
        elif item.isdigit():
            sources.append(Source("camera", item))
        elif _GLOB_CHARACTERS.search(item):
            matches = expand_glob(item, recursive)
            sources.extend(_file_source(p) for p in matches)
            if not matches:
                problems.append(LocatedError(item, "no image or video file matches this pattern"))
        else:
            sources.append(_file_source(path))
    return list(dict.fromkeys(sources)), problems  # each source once, first place kept


def list_folder(folder: Path, recursive: bool = True) -> list[Path]:
    """The entries of ``folder`` (and of its subfolders when ``recursive``) named like an image or
    a video, sorted. A folder or broken link named like an image is listed too, so that reading it
    reports it rather than leaving it out silently (a folder is searched all the same)."""
    suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    entries = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in entries if p.suffix.lower() in suffixes)


def expand_glob(pattern: str, recursive: bool = True) -> list[Path]:
    """The image and video files ``pattern`` matches (``**`` spans folders), sorted; a matched folder
    gives its files as :func:`list_folder` does."""
    found: list[Path] = []
    for match in sorted(glob.glob(pattern, recursive=True)):
        path = Path(match)
        if path.is_dir():
            found.extend(list_folder(path, recursive))
        elif path.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
            found.append(path)
    return found


def _file_source(path: Path) -> Source:
    return Source("video" if path.suffix.lower() in VIDEO_SUFFIXES else "image", str(path))


@dataclass
class Frame:
    """One decoded frame: ``index`` counts from 0 in the source (skipped frames included),
    ``time_s`` is its time in seconds, ``image`` is BGR uint8 [H, W, 3]."""

    index: int
    time_s: float
    image: np.ndarray


class VideoReader:
    """The frames of a video file, camera or stream, read with ``cv2.VideoCapture``.

    Attributes:
        fps: frames per second as the source reports it, or :data:`DEFAULT_FPS` when it does not.
        frame_count: frames in the source when it says (files), else None (cameras, live streams).
        failure: set when the source stopped delivering frames before its announced end, or a
            camera lost its connection; the frames read up to there were yielded.
    """

    def __init__(self, source: Source, stride: int = 1) -> None:
        """Open ``source``; every ``stride``-th frame is decoded (the others are skipped undecoded).

        Raises:
            VideoReadError: the file is missing, or OpenCV cannot open the source.
        """
        if source.is_image:
            raise ValueError(f"{source.location}: an image, not a video source")
        self.source, self.stride = source, max(1, stride)
        if source.kind == "video":
            path = Path(source.location)
            if not path.exists() or path.is_dir():  # a pipe (FIFO) is not a regular file but reads
                raise VideoReadError(source.location, missing_file_problem(path))
        self.capture = cv2.VideoCapture(int(source.location) if source.kind == "camera" else source.location)
        if not self.capture.isOpened():
            self.capture.release()
            what = {"video": "a video file", "camera": "a camera", "stream": "a stream"}[source.kind]
            raise VideoReadError(source.location, f"OpenCV cannot open it as {what} (unknown format, damaged, or not reachable)")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if math.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS
        count = self.capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if source.kind == "video" and math.isfinite(count) and count > 0 else None
        self.failure: VideoReadError | None = None

    def batches(self, size: int) -> Iterator[list[Frame]]:
        """Lists of up to ``size`` frames, until the source ends or fails (see :attr:`failure`)."""
        batch: list[Frame] = []
        index = 0
        while True:
            frame = self._read(index)
            if frame is None:
                break
            batch.append(frame)
            index += self.stride
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _read(self, index: int) -> Frame | None:
        """Frame ``index`` (after skipping ``stride - 1`` undecoded frames before it unless it is the first)."""
        try:
            grabbed = all(self.capture.grab() for _ in range(self.stride - 1 if index else 0))
            ok, image = self.capture.read() if grabbed else (False, None)
        except cv2.error as error:  # a decoder's own assertion
            return self._fail(index, f"OpenCV failed to read frame {index} ({str(error).strip().splitlines()[-1]})")
        if not ok or image is None:
            if self.source.kind == "camera":
                return self._fail(index, f"no frame {index} (camera disconnected or busy)")
            if self.frame_count is not None and index < self.frame_count:
                return self._fail(index, f"frame {index} of {self.frame_count} could not be read (file truncated or damaged)")
            return None  # the end of a file or stream
        msec = self.capture.get(cv2.CAP_PROP_POS_MSEC)  # the time of the frame just read, when the source has it
        time_s = msec / 1000.0 if math.isfinite(msec) and msec > 0 else index / self.fps
        return Frame(index, round(time_s, 6), image)

    def _fail(self, index: int, problem: str) -> None:
        self.failure = VideoReadError(self.source.location, problem)
        return None

    def close(self) -> None:
        self.capture.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
