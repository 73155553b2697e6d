"""The tutorial's timing: fastbp's loop kernels against its vectorized NumPy reference.

    python docs/loop_vs_vectorized.py                 # measure; writes loop_vs_vectorized.json
    python docs/loop_vs_vectorized.py --plot F.png    # draw the figure from that file

Measuring is ``fastbp bench``'s harness (:func:`fastbp.bench.compare.run`): the same
network, weights and data for both contenders, one epoch per timing, the two alternating
within each round, the best of ``--repeat`` counting; Numba and BLAS on one thread. It
takes a minute or two and the numbers belong to the machine, so the tests do not run it;
the JSON it writes (text, beside this script) records the machine, the date and the
command. The documentation build draws the figure and the table from that JSON
(``docs/hooks.py``), so no image is committed: re-measure, and the next build shows it.
"""
import argparse
import json
import pathlib
import sys

DATA = pathlib.Path(__file__).with_name("loop_vs_vectorized.json")
NETS = ["64-32-10", "784-128-10"]
SCHEDULES = ["online", "4", "16", "64", "256", "full"]


def measure(nets=NETS, schedules=SCHEDULES, repeat=3, dtype="float32", out=print):
    """Time loop against vectorized on one thread: a dict with the machine's description,
    the command's settings and ``rows`` as :func:`fastbp.bench.compare.run` returns them
    (per net and schedule, ``rates``: samples per second of each contender)."""
    from fastbp.bench import compare
    from fastbp.bench.harness import set_threads
    from fastbp.bench.machine import machine_info
    set_threads(1)
    machine = machine_info(1, dtype)
    rows = compare.run(nets, schedules, ["loop", "vectorized"], 1, dtype, repeat, out=out)
    return dict(machine=machine, nets=list(nets), schedules=list(schedules), repeat=repeat,
                dtype=dtype, rows=rows)


def load(path=DATA):
    """The measurements ``measure`` wrote to ``path``."""
    return json.loads(pathlib.Path(path).read_text())


def table(data):
    """The measurements as a Markdown table: samples per second and the loop kernels'
    speed-up, with the machine they were measured on."""
    lines = ["| network | batch | loop, samples/s | vectorized, samples/s | loop / vectorized |",
             "|---|---|--:|--:|--:|"]
    for row in data["rows"]:
        loop, vec = row["rates"]["loop"], row["rates"]["vectorized"]
        lines.append(f"| {row['net']} | {row['schedule']} | {loop:,.0f} | {vec:,.0f} "
                     f"| {loop / vec:.2f}x |")
    machine = "; ".join(data["machine"])
    return "\n".join(lines) + (f"\n\nMeasured with `python docs/loop_vs_vectorized.py` "
                               f"(best of {data['repeat']}, {data['dtype']}): {machine}.\n")


def draw(data, path):
    """The figure: the loop kernels' speed-up over vectorized NumPy against the batch size,
    one line per network (:func:`fastbp.bench.compare.plot`), written to ``path``."""
    from fastbp.bench import compare
    compare.plot(data["rows"], path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", metavar="FILE.png",
                        help="draw the figure from the saved measurements instead of measuring")
    parser.add_argument("--repeat", type=int, default=3, help="timings per contender (best counts)")
    args = parser.parse_args(argv)
    if args.plot:
        draw(load(), args.plot)
        print(f"figure written to {args.plot}")
        return 0
    data = measure(repeat=args.repeat)
    DATA.write_text(json.dumps(data, indent=1) + "\n")
    print(f"measurements written to {DATA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
