"""Streams at fleet scale: N concurrent streams at a fixed pace directly, through this gateway (one and two
processes; chat and Messages translated to chat) and through the peers, with a profile of the relay.

    python -m benchmarks.streaming_scale [--streams 50,200,500,1000] [--processes 1,2]
        [--surfaces chat,messages] [--peers litellm,portkey] [--peer-streams 10,50,200] [--pace 0.02]
        [--chunks 100] [--window 10] [--profile 500] [--quiet-wait 600] [--quick] [--write]

The method: benchmarks/streaming_scale/README.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmarks.harness import files
from benchmarks.harness.cli import name_list, number_list, run, say
from benchmarks.peers.cli import peer_list
from benchmarks.peers.install import PEER_KEYS
from benchmarks.streaming_scale import report
from benchmarks.streaming_scale.profile import Profile, profile_gateway
from benchmarks.streaming_scale.run import SURFACES, Options, Target, run_benchmark


def parse_args(argv: Sequence[str] | None = None) -> tuple[Options, int, bool]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.streaming_scale", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--streams", type=number_list, default=[50, 200, 500, 1000], help="default 50,200,500,1000")
    parser.add_argument(
        "--peer-streams", type=number_list, default=[10, 50, 200], help="the peers' (default 10,50,200)"
    )
    parser.add_argument("--processes", type=number_list, default=[1, 2], help="gateway processes (default 1,2)")
    parser.add_argument(
        "--surfaces",
        type=lambda text: name_list(text, list(SURFACES), "surface"),
        default=list(SURFACES),
        help="default chat,messages",
    )
    parser.add_argument("--peers", type=peer_list, default=list(PEER_KEYS), help="default litellm,portkey")
    parser.add_argument("--pace", type=float, default=0.02, help="seconds between chunks (default 0.02)")
    parser.add_argument("--chunks", type=int, default=100, help="content chunks per stream (default 100)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured per point (default 10)")
    parser.add_argument(
        "--profile",
        type=int,
        default=500,
        metavar="STREAMS",
        help="profile the one-process gateway at this many streams (0: no profile; default 500)",
    )
    parser.add_argument("--quiet-wait", type=float, default=600.0, metavar="SECONDS", help="as in benchmarks.peers")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="50 and 200 streams, one process, 3 s windows, no peers, no profile, no quiet wait",
    )
    parser.add_argument(
        "--source", default="", metavar="TREE", help="run the gateway from this source tree (an older checkout)"
    )
    parser.add_argument("--write", action="store_true", help="write the JSON and the section of RESULTS.md")
    args = parser.parse_args(argv)
    if args.pace <= 0 or args.chunks < 2 or args.window <= 0 or args.quiet_wait < 0 or args.profile < 0:
        parser.error("--pace and --window must be positive, --chunks at least 2, --quiet-wait and --profile >= 0")
    quick = args.quick
    options = Options(
        streams=[50, 200] if quick else args.streams,
        peer_streams=args.peer_streams,
        processes=[1] if quick else args.processes,
        surfaces=args.surfaces,
        peers=[] if quick else args.peers,
        pace_s=args.pace,
        chunks=50 if quick else args.chunks,
        window_s=3.0 if quick else args.window,
        quiet_wait_s=0.0 if quick else args.quiet_wait,
        quick=quick,
        source=args.source,
    )
    return options, 0 if quick else args.profile, args.write and not quick


def main(argv: Sequence[str] | None = None) -> int:
    options, profile_streams, write = parse_args(argv)
    machine_data = report.machine_info()
    started = files.utc_now()

    async def everything() -> tuple[list[Target], Profile | None]:
        targets = await run_benchmark(options)
        profile = await profile_gateway(options, profile_streams, started) if profile_streams else None
        return targets, profile

    targets, profile = run(everything(), say)
    print(report.table(targets))
    print(report.goals_text(targets))
    print(report.capacity_text(targets))
    if profile is not None:
        print(f"profile: {profile.summary or profile.error}")
    if write:
        published = report.write(started, machine_data, options, targets, profile)
        say(f"wrote {published} and the {report.SECTION} section of {files.RESULTS_MD}")
    return 0
