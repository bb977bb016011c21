"""`python -m stagger.agent --runtime-fd N [--once]`: the lean daemon that `stagger agent`
execs into. It reads the runtime `stagger agent` built (pickled into a memory file that only
that parent process wrote) and imports nothing of the CLI or the config model."""

from __future__ import annotations

import os
import pickle
import sys

from stagger.core.errors import StaggerError


def main(argv: list[str]) -> int:
    if "--runtime-fd" not in argv:
        sys.stderr.write("stagger: run the agent as `stagger agent`\n")
        return 2
    fd = int(argv[argv.index("--runtime-fd") + 1])
    with os.fdopen(fd, "rb") as f:
        rt = pickle.load(f)  # written by our own parent process, never read from elsewhere
    from stagger.agent.daemon import main as run

    try:
        return run(rt, once="--once" in argv)
    except StaggerError as exc:
        sys.stderr.write(f"stagger: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
