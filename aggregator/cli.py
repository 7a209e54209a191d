"""The `aggregator` command line: parse arguments, load the config, call the stage that does the work.

No business logic here. Exit codes: 0 done (a poll pass with failed sources still ran: 0),
1 an environment error (storage unreachable, file unreadable), 2 invalid config or usage,
3 the store is locked by another writer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from aggregator import __version__
from aggregator.config.load import Config, SourceConfig, load_config
from aggregator.errors import AggregatorError, ConfigError, StoreLockedError
from aggregator.log import setup_logging
from aggregator.models import SourceState, UpdateOutcome

if TYPE_CHECKING:
    from aggregator.storage import Storage

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_LOCKED = 0, 1, 2, 3

Handler = Callable[[argparse.Namespace, TextIO], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return EXIT_CONFIG
    # A daemon's log is its only voice: `run` logs polls and reloads (info) by default.
    setup_logging(args.verbose - args.quiet + (1 if args.handler is _run else 0), args.log_format)
    try:
        result: int = args.handler(args, sys.stdout)
        return result
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except StoreLockedError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except AggregatorError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    """Global options are accepted before and after the command name (`--config` on every command)."""
    parser = argparse.ArgumentParser(prog="aggregator", description="Regional news feed aggregator and mirror.")
    parser.add_argument("--version", action="version", version=f"aggregator {__version__}")
    _add_global_options(parser, suppress=False)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _add_global_options(sub, suppress=True)
        sub.set_defaults(handler=handler)
        return sub

    command("check", _check, "validate feeds.toml; print every problem as file:line: key: message")

    poll = command("poll", _poll, "poll due sources once, store, republish changed categories (cron-safe)")
    poll.add_argument("--all", action="store_true", help="poll every enabled source, due or not")
    poll.add_argument("--source", action="append", metavar="NAME", default=[], help="poll only this source (repeatable)")
    poll.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS",
                      help="wait this long for another writer to finish (default 60)")

    build = command("build", _build, "re-render every category feed from the store without fetching")
    build.add_argument("--pages", action="store_true",
                       help="also re-render every page of the website (after a template change), not only what changed")

    run = command("run", _run, "run the scheduler daemon: poll every source on its own schedule and serve feeds")
    run.add_argument("--listen", metavar="HOST:PORT", help="override settings.listen")

    serve = command("serve", _serve, "serve the published feeds over HTTP")
    serve.add_argument("--listen", metavar="HOST:PORT", help="override settings.listen")
    serve.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                       help="server processes sharing the address through SO_REUSEPORT (default 1)")

    status = command("status", _status, "one row per source: state, last success, last error, next poll")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    clean = command("clean", _clean, "print what the cleaner makes of an HTML fragment")
    clean.add_argument("file", nargs="?", default="-", help="HTML file, or - for stdin (default)")
    clean.add_argument("--source", metavar="NAME", help="use this source's cleaning rules and URL")
    clean.add_argument("--base-url", metavar="URL", help="resolve relative links against this URL")

    import_jekyll = command("import-jekyll", _import_jekyll, "import the legacy mirror's Jekyll posts")
    import_jekyll.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="_posts/ or old_post/ folders")
    import_jekyll.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS")

    import_opml = command("import-opml", _import_opml, "print [[sources]] blocks for the feeds of an OPML file")
    import_opml.add_argument("file", type=Path)
    import_opml.add_argument("--category", metavar="ID", help="category for the imported sources")
    import_opml.add_argument("--append", action="store_true",
                             help="append the blocks to feeds.toml (kept only if the result validates)")

    command("export-opml", _export_opml, "print the feed sources as OPML 2.0")
    return parser


def _add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """On subcommands the defaults are suppressed so a value given before the command is kept."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("global options")
    group.add_argument("--config", type=Path, metavar="PATH", default=default(None),
                       help="feeds.toml to use (default: $AGGREGATOR_CONFIG, else ./feeds.toml)")
    group.add_argument("-v", "--verbose", action="count", default=default(0), help="more log output (repeatable)")
    group.add_argument("-q", "--quiet", action="count", default=default(0),
                       help="less log output: warnings only for `run`, errors only otherwise (repeatable)")
    group.add_argument("--log-format", choices=["text", "json"], default=default("text"),
                       help="log line format (json for collectors)")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def _config_path(args: argparse.Namespace) -> Path:
    if args.config is not None:
        return Path(args.config)
    return Path(os.environ.get("AGGREGATOR_CONFIG", "feeds.toml"))


def _config_named(args: argparse.Namespace) -> bool:
    return args.config is not None or "AGGREGATOR_CONFIG" in os.environ


def _load(args: argparse.Namespace) -> Config:
    return load_config(_config_path(args), os.environ)


def _check(args: argparse.Namespace, out: TextIO) -> int:
    config = _load(args)
    print(f"{_config_path(args)}: ok ({len(config.sources)} sources, {len(config.categories)} categories)", file=out)
    for source, hint in _store_hints(config):
        print(f"{_config_path(args)}: note: source {source!r}: {hint}", file=out)
    return EXIT_OK


def _store_hints(config: Config) -> list[tuple[str, str]]:
    """What the store knows that ops should fix in feeds.toml (moved or retired sources).

    Only an existing store is read: `check` must not create one.
    """
    from aggregator.ops.status import status_rows
    from aggregator.storage import open_storage
    from aggregator.update import utc_now

    store = config.settings.store
    if "://" not in store and not Path(store).exists():
        return []
    storage = open_storage(store)
    try:
        rows = status_rows(config, storage.get_source_states(), {}, utc_now())
    finally:
        storage.close()
    return [(row.source, row.hint) for row in rows if row.hint]


def _poll(args: argparse.Namespace, out: TextIO) -> int:
    from aggregator.storage import open_storage

    config = _load(args)
    unknown = sorted(set(args.source) - {s.name for s in config.sources})
    if unknown:
        print(f"aggregator: unknown source(s): {', '.join(unknown)}", file=sys.stderr)
        return EXIT_CONFIG
    storage = open_storage(config.settings.store)
    try:
        with storage.writer_lock(args.lock_timeout):
            states = storage.get_source_states()  # the pass's one read of every source's state
            sources = _sources_to_poll(args, config, states)
            outcomes = _poll_pass(config, storage, sources, states, quiet=args.quiet > 0)
            published = _publish_after_poll(config, storage, outcomes)
    finally:
        storage.close()
    _print_summary(outcomes, published, out)
    return EXIT_OK


def _sources_to_poll(
    args: argparse.Namespace, config: Config, states: Mapping[str, SourceState]
) -> list[SourceConfig]:
    """--source names (even disabled ones), else every enabled source with --all, else the due ones."""
    from aggregator.schedule import select_due
    from aggregator.update import utc_now

    if args.source:
        return [s for s in config.sources if s.name in set(args.source)]
    if args.all:
        return [s for s in config.sources if s.enabled]
    return select_due(config.sources, states, utc_now())


def _poll_pass(
    config: Config, storage: Storage, sources: list[SourceConfig], states: Mapping[str, SourceState], *, quiet: bool
) -> list[UpdateOutcome]:
    """Fetch concurrently in the event loop; parse and clean in a process pool of one worker per core,
    started only when a document needs parsing."""
    from aggregator.fetch.client import HttpFetcher
    from aggregator.ops.progress import Progress
    from aggregator.update import Updater
    from aggregator.workers import LazyProcessPool

    progress = None if quiet else Progress(total=len(sources), stream=sys.stderr)
    workers = min(os.cpu_count() or 1, 8)
    use_pool = len(sources) > 1 and workers > 1
    with LazyProcessPool(workers) if use_pool else contextlib.nullcontext() as pool:

        async def run_pass() -> list[UpdateOutcome]:
            async with HttpFetcher(config.settings) as fetcher:
                updater = Updater(config, storage, fetcher, executor=pool)
                return await updater.update_sources(
                    sources, on_outcome=progress.on_outcome if progress else None, states=states)

        outcomes = asyncio.run(run_pass())
    if progress:
        progress.close()
    return outcomes


def _publish_after_poll(config: Config, storage: Storage, outcomes: Sequence[UpdateOutcome]) -> list[str]:
    """Republish the categories that changed; the first pass publishes every feed, even empty ones.
    With nothing to publish, the WebSub pings a hub missed earlier are retried (a publish retries them itself)."""
    from aggregator.publish import is_published, output_dir_of, publish_categories
    from aggregator.publish.websub import retry_pending_pings

    if not is_published(config):
        return publish_categories(storage, config, None)
    changed = sorted({c for o in outcomes for c in o.changed_categories})
    if changed:
        return publish_categories(storage, config, changed)
    retry_pending_pings(output_dir_of(config), config.settings)
    return []


def _print_summary(outcomes: Sequence[UpdateOutcome], published: Sequence[str], out: TextIO) -> None:
    labels = {"not_modified": "not modified"}
    width = max([len(o.source_name) for o in outcomes] + [6])
    for o in sorted(outcomes, key=lambda o: o.source_name):
        detail = f"new {o.inserted}, updated {o.updated}, unchanged {o.unchanged}"
        if o.error is not None:
            detail = o.error.message
        print(f"{o.source_name:<{width}}  {labels.get(o.status, o.status):<12}  {detail}", file=out)
    totals = {s: sum(o.status == s for o in outcomes) for s in ("new", "updated", "unchanged", "not_modified", "error")}
    print(
        f"{len(outcomes)} sources: {totals['new']} with new items, {totals['updated']} updated, "
        f"{totals['unchanged']} unchanged, {totals['not_modified']} not modified, {totals['error']} failed; "
        f"{sum(o.inserted for o in outcomes)} new items; republished: {', '.join(published) or 'nothing'}",
        file=out,
    )


def _build(args: argparse.Namespace, out: TextIO) -> int:
    from aggregator.publish import publish_categories
    from aggregator.storage import open_storage

    config = _load(args)
    storage = open_storage(config.settings.store)
    try:
        written = publish_categories(storage, config, None, full_pages=args.pages)
    finally:
        storage.close()
    print(f"rewrote {len(written)} feed(s): {', '.join(written) or 'none changed'}", file=out)
    return EXIT_OK


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from aggregator.daemon.scheduler import run_daemon

    _load(args)  # refuse to start on an invalid config, with the same messages as `check`
    return run_daemon(_config_path(args), listen=args.listen, env=os.environ)


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    from aggregator.serve import serve_forever

    config = _load(args)
    serve_forever(config, args.listen or config.settings.listen, workers=args.workers)
    return EXIT_OK


def _status(args: argparse.Namespace, out: TextIO) -> int:
    from aggregator.ops.status import format_status, status_rows
    from aggregator.storage import open_storage
    from aggregator.update import utc_now

    config = _load(args)
    storage = open_storage(config.settings.store)
    try:
        rows = status_rows(config, storage.get_source_states(), storage.items_per_source(), utc_now())
    finally:
        storage.close()
    print(format_status(rows, as_json=args.json), file=out)
    return EXIT_OK


def _clean(args: argparse.Namespace, out: TextIO) -> int:
    from aggregator.clean import clean_html
    from aggregator.config.load import CleanRules

    rules, base_url, encoding = CleanRules(), args.base_url, None
    if args.source:
        source = next((s for s in _load(args).sources if s.name == args.source), None)
        if source is None:
            print(f"aggregator: unknown source: {args.source}", file=sys.stderr)
            return EXIT_CONFIG
        rules, base_url, encoding = source.clean, base_url or source.url, source.encoding
    elif _config_named(args) or _config_path(args).exists():
        _load(args)  # not needed without --source, but an invalid config stops this command too
    try:
        body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"aggregator: clean: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_ERROR
    print(clean_html(_decode_fragment(body, encoding), base_url, rules), file=out)
    return EXIT_OK


def _decode_fragment(body: bytes, encoding: str | None) -> str:
    """Bytes as a source would send them, decoded the way the pipeline decodes an HTML page; replacement
    characters only when no charset fits (GB18030 itself refuses some byte sequences)."""
    from aggregator.parse.charset import CharsetError, decode_html

    try:
        decoded = decode_html(body, None, encoding)
    except CharsetError as exc:
        print(f"aggregator: clean: {exc}; read as UTF-8 with replacement characters", file=sys.stderr)
        return body.decode("utf-8", errors="replace")
    for warning in decoded.warnings:
        print(f"aggregator: clean: {warning}", file=sys.stderr)
    return decoded.text


def _import_jekyll(args: argparse.Namespace, out: TextIO) -> int:
    from aggregator.importers.jekyll import import_legacy_posts
    from aggregator.ops.progress import Progress
    from aggregator.publish import publish_categories
    from aggregator.storage import open_storage

    config = _load(args)
    storage = open_storage(config.settings.store)
    try:
        with storage.writer_lock(args.lock_timeout):
            progress = None if args.quiet else Progress(None, sys.stderr)
            report = import_legacy_posts(storage, config, args.dirs, progress=progress)
            published = publish_categories(storage, config, None)
    finally:
        storage.close()
    print(report.summary(), file=out)
    print(f"republished: {', '.join(published) or 'nothing'}", file=out)
    return EXIT_OK


def _import_opml(args: argparse.Namespace, out: TextIO) -> int:
    from aggregator.importers.opml import append_to_config, opml_to_toml

    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"aggregator: import-opml: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_ERROR
    blocks = opml_to_toml(data, category=args.category, known=_load(args))
    if not args.append:
        print(blocks, file=out)
        return EXIT_OK
    config = append_to_config(_config_path(args), blocks, os.environ)
    print(f"{_config_path(args)}: appended; now {len(config.sources)} sources", file=out)
    return EXIT_OK


def _export_opml(args: argparse.Namespace, out: TextIO) -> int:
    from aggregator.importers.opml import export_opml

    out.write(export_opml(_load(args)).decode("utf-8"))
    return EXIT_OK
