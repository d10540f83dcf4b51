"""Optional HLS packaging (`media.hls`): the MP4 rungs remuxed into HLS, no re-encoding.

For each rung `mp4_<n>` this writes `hls/mp4_<n>/index.m3u8` and its `.ts` segments (cut on
the rungs' keyframes, every `gop_seconds`, so all rungs switch at the same instants), plus a
master playlist `hls.m3u8` naming every rung with its bandwidth and resolution. Playlists use
relative URIs, so HLS is for stores served through `media.cdn_base_url` (a presigned URL
signs one object, not the segments a playlist points to). Blocking: runs in the worker.
"""

from __future__ import annotations

import math
from pathlib import Path

import av

from media_pipeline.images import RenderedFile

# avc1 High profile level 4.0 and AAC-LC: what the rungs are encoded as.
_CODECS = "avc1.640028,mp4a.40.2"


def package_hls(rungs: list[RenderedFile], out_dir: Path, segment_seconds: float, duration: float) -> list[RenderedFile]:
    files: list[RenderedFile] = []
    lines = ["#EXTM3U", "#EXT-X-VERSION:3"]
    for rung in rungs:
        d = out_dir / "hls" / rung.name
        d.mkdir(parents=True, exist_ok=True)
        _remux(rung.path, d, segment_seconds)
        for seg in sorted(d.glob("seg_*.ts")):
            files.append(RenderedFile(f"hls/{rung.name}/{seg.stem}", seg, rung.width, rung.height, "video/mp2t", "ts", listed=False))
        files.append(RenderedFile(f"hls/{rung.name}/index", d / "index.m3u8", rung.width, rung.height,
                                  "application/vnd.apple.mpegurl", "m3u8", listed=False))
        bandwidth = math.ceil(rung.path.stat().st_size * 8 / max(duration, 0.1) * 1.2)
        lines.append(f'#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},RESOLUTION={rung.width}x{rung.height},CODECS="{_CODECS}"')
        lines.append(f"hls/{rung.name}/index.m3u8")
    master = out_dir / "hls.m3u8"
    master.write_text("\n".join(lines) + "\n")
    top = rungs[0]
    files.append(RenderedFile("hls", master, top.width, top.height, "application/vnd.apple.mpegurl", "m3u8"))
    return files


def _remux(mp4: Path, d: Path, segment_seconds: float) -> None:
    options = {
        "hls_time": f"{segment_seconds:g}",
        "hls_playlist_type": "vod",
        "hls_segment_filename": str(d / "seg_%05d.ts"),
    }
    with av.open(str(mp4)) as inp, av.open(str(d / "index.m3u8"), "w", format="hls", options=options) as oc:
        mapping = {s.index: oc.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        for packet in inp.demux(list(inp.streams)):
            if packet.dts is None or packet.stream.index not in mapping:
                continue  # the demuxer's end-of-stream flush packets
            packet.stream = mapping[packet.stream.index]
            oc.mux(packet)
