"""Run the chaos scenarios of issue 7 and print the table: lost and doubled changes per fault.

    python bench/chaos.py                      # every scenario, fast profile (as in CI)
    HOOKS_CHAOS_FULL=1 python bench/chaos.py   # the issue's numbers (30 s outage, 5-15 s API)
    python bench/chaos.py --full "redis stopped" "two pollers"

Each scenario runs real processes (receiver, workers, pollers) against a real Redis and the
fake Asana on 127.0.0.1; see tests/chaos/scenarios.py. Exits 1 when any change was lost or
doubled. Logs of every process stay in the printed folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.chaos.scenarios import (
    FULL,
    SCENARIOS,
    Row,
    run_named,
    selected_profile,
    table,
    table_line,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("scenarios", nargs="*", help=f"some of: {', '.join(SCENARIOS)}")
    parser.add_argument("--full", action="store_true", help="the issue's numbers")
    args = parser.parse_args()
    profile = FULL if args.full else selected_profile()
    names = args.scenarios or list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {unknown}")
    work_dir = Path(tempfile.mkdtemp(prefix="asana-hooks-chaos-"))
    print(f"chaos: profile={profile.name} logs in {work_dir}", flush=True)
    rows: list[Row] = []
    began = time.monotonic()
    for name in names:
        row = run_named(name, profile, work_dir)
        rows.append(row)
        status = "ok" if row.verdict.ok else "FAILED " + row.problems()
        print(f"  {name}: {row.seconds:.1f} s {status}", flush=True)
    print()
    print(table([table_line(row) for row in rows], profile=profile.name))
    print(f"total {time.monotonic() - began:.1f} s")
    return 0 if all(row.verdict.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
