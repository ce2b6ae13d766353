"""vPDQ video matching: enough of the query's frames must match, as python-threatexchange defines it."""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tiptriage import pipeline
from tiptriage.hashes.video import VideoIndex, hash_video, parse_vpdq, usable, vpdq_available
from tiptriage.intake.cybertip_xml_writer import write_submission
from tiptriage.model import FileHash, HashType, IncidentType, Report, ReportedFile
from tiptriage.store import Store

rng = random.Random(5)


def frame() -> str:
    return rng.getrandbits(256).to_bytes(32, "big").hex()


def near(h: str, bits: int) -> str:
    v = int(h, 16)
    for b in rng.sample(range(256), bits):
        v ^= 1 << b
    return f"{v:064x}"


def lines(frames: list[str], quality: int = 100) -> str:
    return "\n".join(f"{i},{f},{quality},{i}.0" for i, f in enumerate(frames))


def test_both_serialisations_parse_and_bad_ones_are_refused() -> None:
    f = [frame(), frame()]
    assert [x.pdq for x in parse_vpdq(lines(f))] == f
    assert [x.pdq for x in parse_vpdq(';'.join(lines(f).splitlines()))] == f
    as_json = json.dumps([{"hash": f[0], "quality": 90, "timestamp": 0.0}, {"hash": f[1], "quality": 10, "timestamp": 1.0}])
    parsed = parse_vpdq(as_json)
    assert usable(parsed, 50) == [f[0]]  # the low-quality frame is not used to match
    for bad in ("", "0,zz,100,0", "[{}]", "0"):
        with pytest.raises(ValueError):
            parse_vpdq(bad)


def test_match_needs_eighty_percent_of_query_frames() -> None:
    known = [frame() for _ in range(20)]
    idx = VideoIndex()
    idx.add(7, known)
    idx.add(8, [frame() for _ in range(20)])
    eight_of_ten = [near(known[i], 6) for i in range(8)] + [frame(), frame()]
    (entry, distance) = idx.search(eight_of_ten, 31)[0]
    assert entry == 7 and distance == 6
    seven_of_ten = [near(known[i], 6) for i in range(7)] + [frame(), frame(), frame()]
    assert idx.search(seven_of_ten, 31) == []
    assert idx.search(seven_of_ten, 31, percent=70.0)[0][0] == 7
    idx.remove(7)
    assert idx.search(eight_of_ten, 31) == []


def test_video_matching_through_the_store(store: Store, tmp_path: Path) -> None:
    known = [frame() for _ in range(10)]
    (tmp_path / "v.csv").write_text(f'hash_type,value,category,series,victim_identified,media_id\nVPDQ,"{";".join(lines(known).splitlines())}",1,S9,false,VID1\n')
    imp = pipeline.import_hashset(store, tmp_path / "v.csv", "videos")
    assert (imp.added, imp.refused) == (1, 0)
    when = datetime(2026, 10, 1, tzinfo=UTC)
    query = lines([near(k, 4) for k in known[:9]] + [frame()])
    r = Report(id="RV1", received_at=when, incident_type=IncidentType.CHILD_PORNOGRAPHY, incident_datetime=when,
               files=[ReportedFile(file_id="vid", hashes=[FileHash(hash_type=HashType.VPDQ, value=query)])])
    write_submission(r, tmp_path / "subs")
    assert pipeline.ingest(store, [tmp_path / "subs"]).accepted == 1
    pipeline.triage(store)
    (m,) = store.hashsets.matches_of("RV1")
    assert (m["match_type"], m["distance"], m["series"]) == ("video", 4, "S9")


def test_video_hashing_says_clearly_when_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vpdq", None)  # what a machine without the extra sees: import fails
    assert not vpdq_available()
    with pytest.raises(RuntimeError, match=r"tiptriage\[video\]"):
        hash_video(tmp_path / "none.mp4")


def test_hashing_a_generated_video_and_matching_a_re_encoded_copy(tmp_path: Path) -> None:
    import shutil
    import subprocess

    if not vpdq_available():
        pytest.skip("the optional tiptriage[video] extra (vpdq, built against FFmpeg) is not installed")
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed, so no test video can be generated")
    # a synthetic test pattern (no imagery of people), and the same pattern re-encoded at a much lower quality
    original, copy = tmp_path / "pattern.mp4", tmp_path / "copy.mp4"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=6:size=320x240:rate=10",
                    "-pix_fmt", "yuv420p", str(original)], check=True)
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(original), "-crf", "40", str(copy)], check=True)
    known = parse_vpdq(hash_video(original))
    query = parse_vpdq(hash_video(copy))
    assert len(known) >= 5 and all(f.quality is not None for f in known)
    idx = VideoIndex()
    idx.add(42, usable(known, 0))
    ((entry, distance),) = idx.search(usable(query, 50), 31)
    assert entry == 42 and distance <= 31
