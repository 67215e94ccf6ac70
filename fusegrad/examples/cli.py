"""What the example programs share around their work: exit codes and one-line errors."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

import fusegrad as fg


def run_main(work: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> int:
    """Run `work(args)`: 0 when done, 1 with a one-line error for a user's mistake, 130 on Ctrl-C."""
    try:
        work(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (fg.Error, OSError, ValueError, KeyError) as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 1
    return 0
