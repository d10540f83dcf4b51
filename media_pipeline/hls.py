"""Optional HLS packaging (`media.hls`): the MP4 rungs remuxed into HLS, no re-encoding.

For each H.264 rung `mp4_<n>` this writes `hls/mp4_<n>/index.m3u8` and its `.ts` segments (cut
on the rungs' keyframes, every `gop_seconds`, so all rungs switch at the same instants), plus a
master playlist `hls.m3u8` naming every rung as RFC 8216 asks: BANDWIDTH the peak segment
bit rate (what a player's adaptation compares with its throughput), AVERAGE-BANDWIDTH the
mean, RESOLUTION, FRAME-RATE and CODECS as the encoder wrote them (codecs.py). Playlists use
relative URIs, so HLS is for stores served through `media.cdn_base_url` (a presigned URL
signs one object, not the segments a playlist points to). Blocking: runs in the worker.
"""

from __future__ import annotations

import math
from pathlib import Path

import av

from media_pipeline.images import RenderedFile


def package_hls(rungs: list[RenderedFile], out_dir: Path, segment_seconds: float,
                fps: float = 0.0) -> list[RenderedFile]:
    files: list[RenderedFile] = []
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for rung in rungs:
        d = out_dir / "hls" / rung.name
        d.mkdir(parents=True, exist_ok=True)
        _remux(rung.path, d, segment_seconds)
        for seg in sorted(d.glob("seg_*.ts")):
            files.append(RenderedFile(f"hls/{rung.name}/{seg.stem}", seg, rung.width, rung.height, "video/mp2t", "ts",
                                      listed=False))
        files.append(RenderedFile(f"hls/{rung.name}/index", d / "index.m3u8", rung.width, rung.height,
                                  "application/vnd.apple.mpegurl", "m3u8", listed=False))
        peak, average = _bit_rates(d)
        attrs = [f"BANDWIDTH={peak}", f"AVERAGE-BANDWIDTH={average}", f"RESOLUTION={rung.width}x{rung.height}"]
        attrs += [f"FRAME-RATE={fps:.3f}"] if fps else []
        attrs += [f'CODECS="{rung.codecs}"']
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(f"hls/{rung.name}/index.m3u8")
    master = out_dir / "hls.m3u8"
    master.write_text("\n".join(lines) + "\n")
    top = rungs[0]
    files.append(RenderedFile("hls", master, top.width, top.height, "application/vnd.apple.mpegurl", "m3u8"))
    return files


def _bit_rates(rung_dir: Path) -> tuple[int, int]:
    """(peak, average) bits per second over a rung's segments, from its playlist's durations
    and the segments' sizes (every byte a player downloads: video, audio and TS overhead)."""
    peak, total_bits, total_seconds, seconds = 0.0, 0, 0.0, 0.0
    for line in (rung_dir / "index.m3u8").read_text().splitlines():
        if line.startswith("#EXTINF:"):
            seconds = float(line[len("#EXTINF:"):].split(",")[0])
        elif line and not line.startswith("#"):
            bits = (rung_dir / line).stat().st_size * 8
            peak = max(peak, bits / max(seconds, 0.001))
            total_bits, total_seconds = total_bits + bits, total_seconds + seconds
    return math.ceil(peak), math.ceil(total_bits / max(total_seconds, 0.001))


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
