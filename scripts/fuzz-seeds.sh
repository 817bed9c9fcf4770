#!/usr/bin/env bash
# Recreates the seed corpus of the `parse` fuzz target (fuzz/corpus/parse/,
# git-ignored) from the packet captures of the test data: every frame of
# every classic pcap or pcapng file under the test-data folder becomes one
# input, its first byte selecting the link type as in
# fuzz/fuzz_targets/parse.rs, the rest the captured frame.
#
# Usage: scripts/fuzz-seeds.sh [TESTDATA_DIR] [MAX_FRAMES_PER_FILE]
#   TESTDATA_DIR defaults to $FLOWLOG_TESTDATA, else ../shared/testdata
#   next to the repository, else /work/shared/testdata.
#   FUZZ_SEEDS_OUT overrides the output folder.
# Needs only python3 (no packages beyond the standard library).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
testdata="${1:-${FLOWLOG_TESTDATA:-}}"
if [[ -z "$testdata" ]]; then
    for d in "$root/../shared/testdata" /work/shared/testdata; do
        if [[ -d "$d" ]]; then testdata="$d"; break; fi
    done
fi
if [[ -z "$testdata" || ! -d "$testdata" ]]; then
    echo "fuzz-seeds: no test-data folder (give it as the first argument)" >&2
    exit 1
fi
max="${2:-256}"
out="${FUZZ_SEEDS_OUT:-$root/fuzz/corpus/parse}"
mkdir -p "$out"

python3 - "$testdata" "$out" "$max" <<'PY'
import hashlib
import os
import struct
import sys

testdata, out, max_frames = sys.argv[1], sys.argv[2], int(sys.argv[3])

# pcap LINKTYPE_ -> selector (index into LINKS in fuzz_targets/parse.rs).
SELECTOR = {1: 0, 101: 1, 12: 1, 14: 1, 228: 2, 229: 3, 113: 4, 276: 5, 0: 6, 108: 7}


def classic(data):
    """Yields (linktype, captured bytes, original length) of a classic pcap."""
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return
    if len(data) < 24:
        return
    # Low 16 bits: the link type; the upper bits carry FCS information.
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0xFFFF
    off = 24
    while off + 16 <= len(data):
        _sec, _frac, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + incl]
        off += incl
        yield linktype, frame, orig


def pcapng(data):
    """Yields (linktype, captured bytes, original length) of a pcapng file."""
    off = 0
    e = "<"
    links = []
    while off + 12 <= len(data):
        btype = struct.unpack(e + "I", data[off:off + 4])[0]
        if btype == 0x0A0D0D0A:  # section header: byte order, new interfaces
            bom = data[off + 8:off + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        blen = struct.unpack(e + "I", data[off + 4:off + 8])[0]
        if blen < 12 or off + blen > len(data):
            return
        body = data[off + 8:off + blen - 4]
        if btype == 1 and len(body) >= 2:  # interface description
            links.append(struct.unpack(e + "H", body[:2])[0])
        elif btype == 6 and len(body) >= 20:  # enhanced packet
            ifid, _hi, _lo, cap, orig = struct.unpack(e + "IIIII", body[:20])
            if ifid < len(links):
                yield links[ifid], body[20:20 + cap], orig
        elif btype == 3 and len(body) >= 4 and links:  # simple packet
            orig = struct.unpack(e + "I", body[:4])[0]
            yield links[0], body[4:4 + orig], orig
        elif btype == 2 and len(body) >= 20:  # obsolete packet block
            ifid = struct.unpack(e + "H", body[:2])[0]
            cap, orig = struct.unpack(e + "II", body[12:20])
            if ifid < len(links):
                yield links[ifid], body[20:20 + cap], orig
        off += blen


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return pcapng(data)
    return classic(data)


written = files = 0
for dirpath, _dirs, names in sorted(os.walk(testdata)):
    for name in sorted(names):
        if not name.endswith((".pcap", ".pcapng", ".cap")):
            continue
        path = os.path.join(dirpath, name)
        files += 1
        n = 0
        for linktype, frame, orig in frames(path):
            sel = SELECTOR.get(linktype)
            if sel is None:
                continue
            seeds = [bytes([sel]) + frame]
            # Snap length cut the frame: also a seed whose wire length
            # (captured + 2^k, k = high 5 bits) covers the original length.
            if orig > len(frame):
                k = max(2, min(31, (orig - len(frame) - 1).bit_length()))
                seeds.append(bytes([sel | (k << 3)]) + frame)
            for s in seeds:
                h = hashlib.sha1(s).hexdigest()
                p = os.path.join(out, h)
                if not os.path.exists(p):
                    with open(p, "wb") as f:
                        f.write(s)
                    written += 1
            n += 1
            if n >= max_frames:
                break
print(f"fuzz-seeds: {written} new inputs from {files} captures in {out}")
PY
