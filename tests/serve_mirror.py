"""Serve the fixture docs mirror on 127.0.0.1 so `doit` can run offline.

    python -m tests.serve_mirror --port 8000
    DEADZONE_URL_REWRITE="https://raw.githubusercontent.com/=http://127.0.0.1:8000/" doit
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fx_docserver import MIRROR_DIR, DocServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--mirror", type=Path, default=MIRROR_DIR)
    args = parser.parse_args()
    server = DocServer(args.mirror, port=args.port).start()
    print(f"serving {args.mirror} at {server.base_url}")
    print(f'export DEADZONE_URL_REWRITE="{server.rewrite}"', flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
