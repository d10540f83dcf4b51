"""Run one transcoding job and freeze it mid-transcode, for the SIGKILL test.

    python -m tests.media_pipeline.kill_helper SETTINGS_JSON MEDIA_KEY MARKER

Once the ladder is a third done it touches MARKER and sleeps, so the test can kill the process
at a known point: rung files half-written in the scratch dir, nothing published yet.
"""

import json
import sys
import time
from pathlib import Path

from config.settings import MediaSettings
from media_pipeline.process import run_job


def main() -> None:
    settings = MediaSettings(**json.loads(sys.argv[1]))
    marker = Path(sys.argv[3])

    def progress(fraction: float) -> None:
        if fraction >= 0.33:
            marker.touch()
            time.sleep(3600)

    run_job(settings, sys.argv[2], "video", progress=progress)


if __name__ == "__main__":
    main()
