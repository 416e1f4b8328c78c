"""``logprobe serve|proxy|faults|run``: thin commands over the library."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from logprobe.data import require_data_dir
from logprobe.faults import FAULTS, resolve
from logprobe.launch.backends import LAUNCHERS
from logprobe.plugin.options import RunOptions, add_arguments


def main(argv: list[str] | None = None) -> int:
    args_given = sys.argv[1:] if argv is None else argv
    if args_given[:1] == ["run"]:
        # Everything after `run` is pytest's, options included: argparse's REMAINDER
        # refuses options that follow a subcommand.
        rest = args_given[1:]
        return _run_suite(rest[1:] if rest[:1] == ["--"] else rest)
    parser = _parser()
    args = parser.parse_args(argv)
    return _dispatch(parser, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logprobe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _serving_commands(sub)
    _document_commands(sub)
    _report_commands(sub)
    return parser


def _serving_commands(sub: Any) -> None:
    serve = sub.add_parser("serve", help="boot a backend on the embedded model (or --serve-model) "
                           "until Ctrl-C")
    serve.add_argument("--backend", default="vllm", choices=sorted(LAUNCHERS))
    # The suite's own options for what it boots, declared once (logprobe.plugin.options).
    add_arguments(serve, "--serve-model", "--serve-args", "--serve-command", "--serve-ready-url",
                  serve_command={"help": "--backend command: a command line with {port} and "
                                 "{model}"},
                  serve_ready_url={"help": "--backend command: the URL that answers 200 once "
                                   "it is ready"})
    serve.add_argument("--log-dir", default=None)
    serve.add_argument("--port", type=int, default=0, help="the port to serve on (default: a free one)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to bind (default 127.0.0.1; 0.0.0.0 for other machines)")
    serve.add_argument("--url-file", default=None, metavar="FILE",
                       help="write the base URL to FILE once the server is ready (scripts wait "
                       "for it); removed when the server stops")
    proxy = sub.add_parser("proxy", help="a fault-injection proxy in front of a real server")
    proxy.add_argument("--upstream", required=True, help="base URL of the real server")
    proxy.add_argument("--port", type=int, required=True)
    proxy.add_argument("--fault", default="", help="comma-separated fault names (see `faults`)")
    proxy.add_argument("--record", default=None,
                       help="append every non-streamed exchange, as the client saw it, to this JSONL")
    run = sub.add_parser("run", help="run the conformance suite (pytest) with the given options")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER)


def _document_commands(sub: Any) -> None:
    faults_cmd = sub.add_parser("faults", help="list the proxy's faults")
    faults_cmd.add_argument("--markdown-into", default=None, metavar="FILE",
                            help="replace the table between <!-- faults:begin --> and "
                            "<!-- faults:end --> in FILE (the README)")

    invariants_cmd = sub.add_parser("invariants", help="every invariant, its level, statement, "
                                    "checks and source, as Markdown")
    invariants_cmd.add_argument("--markdown-into", default=None, metavar="FILE",
                                help="replace the text between <!-- invariants:begin --> and "
                                "<!-- invariants:end --> in FILE (docs/invariants.md)")


def _report_commands(sub: Any) -> None:
    report = sub.add_parser("report", help="the backend x invariant matrix of run.json files, as "
                            "one self-contained HTML page (or a Markdown table)")
    report.add_argument("runs", nargs="+", help="run.json files, one per backend")
    report.add_argument("-o", "--output", default=None,
                        help="HTML file to write (default: matrix.html; with --markdown-into, "
                        "only when given)")
    report.add_argument("--markdown", action="store_true",
                        help="print the compatibility table as Markdown instead")
    report.add_argument("--markdown-into", default=None, metavar="FILE",
                        help="replace the table between <!-- compat:begin --> and "
                        "<!-- compat:end --> in FILE (the README)")

    doctor = sub.add_parser("doctor", help="what the suite learns about a server, on one screen, "
                            "before any test (paste it into an issue)")
    add_arguments(doctor, "--endpoint", "--api-key", "--model", "--tokenizer", "--expectations",
                  endpoint={"required": True, "help": "base URL of the server"},
                  expectations={"help": "a YAML file of known deviations, or none (default: "
                                "the file of the framework the server names itself as)"})

    diff = sub.add_parser("diff", help="regressions, fixes, new and removed checks between two "
                          "runs; exit 1 if a MUST regressed")
    diff.add_argument("old")
    diff.add_argument("new")


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args)
    if args.command == "proxy":
        from logprobe.proxy import run as run_proxy

        try:
            faults = resolve(args.fault)
        except ValueError as exc:
            parser.error(str(exc))
        run_proxy(args.upstream, args.port, faults, record=Path(args.record) if args.record else None)
        return 0
    if args.command == "doctor":
        return _doctor(args)
    if args.command in ("invariants", "faults"):
        return _document(args)
    if args.command == "run":
        return _run_suite(args.pytest_args)
    if args.command in ("report", "diff"):
        try:
            return _report(args) if args.command == "report" else _diff(args)
        except ValueError as exc:
            print(f"logprobe: {exc}", file=sys.stderr)
            return 2
    return 2


def _document(args: argparse.Namespace) -> int:
    """The invariants' or the faults' documentation, printed or written into a file."""
    if args.command == "invariants":
        from logprobe.report.invariants_doc import markdown

        if args.markdown_into:
            _replace_between(Path(args.markdown_into), markdown(), "invariants")
            print(f"logprobe: invariants written into {args.markdown_into}")
        else:
            print(markdown(), end="")
        return 0
    if args.command == "faults" and args.markdown_into:
        from logprobe.faults import markdown_table

        _replace_between(Path(args.markdown_into), markdown_table(), "faults")
        print(f"logprobe: fault table written into {args.markdown_into}")
        return 0
    for fault in FAULTS.values():
        tag = "" if fault.fatal else "  (must NOT fail the run)"
        print(f"{fault.name:28} {fault.description}{tag}\n{'':28} seen in: {fault.seen_in}; "
              f"caught by: {', '.join(fault.trips)}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Boot a backend and serve until Ctrl-C or SIGTERM, then tear its process group down.

    The main thread waits by polling, never inside ``Popen.wait()``: a signal handler that
    runs while the main thread holds subprocess's waitpid lock cannot reap the server, and
    the command then outlived its server by a minute with the leader left a zombie.
    """
    import signal

    from logprobe.launch.backends import LauncherUnavailable, LaunchRequest, launch
    from logprobe.launch.model import ModelPreparationError
    from logprobe.launch.process import ServerStartError

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds to the `with` below, which stops the server

    signal.signal(signal.SIGTERM, stop)
    log_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.mkdtemp(prefix="logprobe-"))
    url_file = Path(args.url_file) if args.url_file else None
    options = RunOptions.from_args(args)
    try:
        booted = launch(LaunchRequest(backend=args.backend, log_dir=log_dir,
                                      model=options.serve_model, api_key=options.api_key,
                                      command=options.serve_command,
                                      ready_url=options.serve_ready_url,
                                      extra_args=shlex.split(options.serve_args or ""),
                                      port=args.port, host=args.host))
        process = booted.process
        print(f"logprobe: starting {process.name} (log: {process.log_path})", flush=True)
        with process:
            if url_file is not None:
                url_file.write_text(booted.base_url + "\n")
            # One stable line scripts can read: the URL, the model, how long it took.
            print(f"logprobe: serving {booted.model or 'its model'} at {booted.base_url} "
                  f"(ready in {process.ready_seconds:.0f} s); Ctrl-C stops it", flush=True)
            while process.alive():
                time.sleep(0.2)
            process.check_alive()
    except (LauncherUnavailable, ModelPreparationError, ServerStartError, RuntimeError) as exc:
        print(f"logprobe: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("logprobe: stopped", file=sys.stderr)
    finally:
        if url_file is not None:
            url_file.unlink(missing_ok=True)
    return 0


def _report(args: argparse.Namespace) -> int:
    from logprobe.report.html import markdown_table, render
    from logprobe.report.provenance import load_runs

    runs, origins = load_runs(args.runs)
    if args.markdown:
        print(markdown_table(runs, origins))
        return 0
    if args.markdown_into:
        _replace_between(Path(args.markdown_into), markdown_table(runs, origins))
        print(f"logprobe: compatibility table written into {args.markdown_into}")
        if args.output is None:
            return 0
    output = args.output or "matrix.html"
    Path(output).write_text(render(runs, provenances=origins), encoding="utf-8")
    print(f"logprobe: {output} ({len(runs)} backends)")
    return 0


def _replace_between(path: Path, table: str, name: str = "compat") -> None:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise ValueError(f"{path} has no {begin} ... {end} block")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{table}\n{end}{tail}", encoding="utf-8")


def _doctor(args: argparse.Namespace) -> int:
    from logprobe.doctor import diagnose
    from logprobe.endpoint import EXIT_ENDPOINT_UNUSABLE, EndpointUnusable

    options = RunOptions.from_args(args)
    try:
        diagnosis = diagnose(options.endpoint or "", options.api_key, options.model,
                             options.tokenizer, options.expectations)
    except EndpointUnusable as exc:
        print(f"logprobe doctor: {exc}", file=sys.stderr)
        return EXIT_ENDPOINT_UNUSABLE
    print(diagnosis.render())
    return 0


def _diff(args: argparse.Namespace) -> int:
    from logprobe.report.diff import diff_runs
    from logprobe.report.matrix import backend_name, load_run

    old, new = load_run(args.old), load_run(args.new)
    result = diff_runs(old, new)
    print(result.render(f"{args.old} [{backend_name(old)}]", f"{args.new} [{backend_name(new)}]"))
    return 1 if result.must_regressed else 0


def _run_suite(pytest_args: list[str]) -> int:
    """Run the suites shipped with the package (or the checkout's) under pytest."""
    suites = require_data_dir("suites")
    return subprocess.call([sys.executable, "-m", "pytest", str(suites), *pytest_args])


if __name__ == "__main__":
    sys.exit(main())
