"""`python bench/traced_hotline.py run --config FILE`: hotline with tracemalloc on, for
bench/memory.py. Each SIGUSR2 dumps a tracemalloc snapshot to $HOTLINE_TRACE_DIR/snapN.pickle
(N = 1, 2, ...), so the benchmark can compare the Python heap before, during and after calls."""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    tracemalloc.start(int(os.environ.get("HOTLINE_TRACE_FRAMES", "1")))
    out = Path(os.environ["HOTLINE_TRACE_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    dumped = 0

    def dump(_signum: int, _frame: object) -> None:
        nonlocal dumped
        dumped += 1
        tracemalloc.take_snapshot().dump(str(out / f"snap{dumped}.pickle"))

    signal.signal(signal.SIGUSR2, dump)
    from hotline.cli import main as hotline_main

    sys.exit(hotline_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
