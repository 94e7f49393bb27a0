"""Keep cut-short JPEG files away from MindSpore's decoder, which crashes or hangs on many of them.

MindSpore 2.10 does not check the result of libjpeg's ``jpeg_read_header``: a JPEG cut off inside its
header kills the whole process with SIGFPE (a division by zero in ``jpeg_calc_output_dimensions``), one
cut off inside a start-of-scan segment hangs the decoder, and a progressive JPEG cut off near one of its
later scans crashes or hangs it too. So image files are read through ``read_image_file``, which refuses,
naming the file, a JPEG whose header up to the first start of scan is incomplete or corrupt, or that has
no end-of-image marker after it (entropy-coded data never contains one, so a cut-short file has none).
That costs microseconds per file. Other formats pass untouched: MindSpore's PNG and BMP decoding fails
cleanly.
"""

_SOI = b"\xff\xd8"
_EOI_MARKER = b"\xff\xd9"
_EOI, _SOS = 0xD9, 0xDA
# Start-of-frame markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM and the restart markers.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _frame_problem(segment: bytes) -> str | None:
    """Check a start-of-frame segment (after its length): sizes and sampling factors libjpeg divides by."""
    if len(segment) < 6:
        return "corrupt frame header"
    width, components = int.from_bytes(segment[3:5], "big"), segment[5]
    if width == 0 or components == 0 or len(segment) < 6 + 3 * components:
        return "corrupt frame header"
    for index in range(components):
        sampling = segment[7 + 3 * index]
        if not (1 <= sampling >> 4 <= 4 and 1 <= sampling & 0x0F <= 4):
            return "corrupt frame header"
    return None


def jpeg_header_problem(data: bytes) -> str | None:
    """Why a JPEG's header is incomplete or corrupt, or None (also for data that is not a JPEG)."""
    if not data.startswith(_SOI):
        return None
    position, frame_seen = len(_SOI), False
    while True:
        if position >= len(data) or data[position] != 0xFF:
            return "truncated or corrupt JPEG header"
        while position < len(data) and data[position] == 0xFF:  # a marker may be preceded by fill bytes
            position += 1
        if position >= len(data):
            return "truncated JPEG header"
        marker = data[position]
        position += 1
        if marker == _EOI:
            return "JPEG ends before its image data"
        if marker in _STANDALONE:
            continue
        length = int.from_bytes(data[position:position + 2], "big")
        end = position + length
        # The segment must be complete and followed by at least one byte of what comes next.
        if length < 2 or end >= len(data):
            return "truncated JPEG header"
        if marker in _SOF:
            problem = _frame_problem(data[position + 2:end])
            if problem is not None:
                return problem
            frame_seen = True
        if marker == _SOS:
            if not frame_seen:
                return "JPEG image data before its frame header"
            return None if data.rfind(_EOI_MARKER) >= end else "truncated JPEG (no end-of-image marker)"
        position = end


def read_image_file(path: str) -> bytes:
    """The file's bytes, for MindSpore to decode; ValueError naming the file if it is a cut-short JPEG.

    Used as ``ImageFolderDataset(decrypt=...)``, the one hook that sees each file's path and bytes before
    MindSpore decodes them.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    problem = jpeg_header_problem(data)
    if problem is not None:
        raise ValueError(f"unreadable image {path}: {problem}")
    return data
