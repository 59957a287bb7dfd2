"""The GPU machine's first run in one call (see ssd_deploy/gpu_check/ and the README's GPU check).

    python benchmarks/gpu_check.py --out runs/gpu-check [--wheels wheels/]

Runs from a checkout with the installed torch: the checkout goes on the path, nothing is created
but OUT. Writes OUT/gpu_check.md and OUT/gpu_check.json; exit code 1 when a check failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, not an installed copy

from ssd_deploy.gpu_check import Workspace, add_to_path, install_wheels, plan, run_gpu_check  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-check"), help="report and work folder")
    parser.add_argument("--device", default="cuda", help="cuda or cuda:N; cpu: the same checks on the CPU (a dry run of this script)")
    parser.add_argument("--budget-s", type=float, default=390.0, help="checks not started after this many seconds are skipped")
    parser.add_argument("--wheels", type=Path, help="folder of wheels to install into OUT/site first (no index, no downloads)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 64], help="batch sizes timed (images per call)")
    parser.add_argument("--skip", nargs="+", default=[], metavar="CHECK", help="checks to leave out, by name (quote names with spaces)")
    args = parser.parse_args()
    site = args.out / "site"
    if args.wheels:
        print(f"gpu_check: installed {len(install_wheels(args.wheels, site))} wheels into {site}")
    elif site.is_dir():
        add_to_path(site)  # wheels installed by an earlier run
    names = [name for name, _ in plan(Workspace(args.out / "work", args.device))]
    unknown = sorted(set(args.skip) - set(names))
    if unknown:
        parser.error(f"--skip {unknown}: unknown checks. Note: expected some of {names}")
    report = run_gpu_check(args.out, args.device, args.budget_s, tuple(args.skip), tuple(args.batch_sizes))
    print(report.markdown())
    print(f"gpu_check: wrote {args.out / 'gpu_check.md'} and {args.out / 'gpu_check.json'}")
    return 1 if report.counts()["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
