"""The `aggregator` command line: parse arguments, load the config, call the stage that does the work.

No business logic here. Exit codes: 0 done (a poll pass with failed sources still ran: 0),
1 an environment error (storage unreachable, file unreadable), 2 invalid config or usage,
3 the store is locked by another writer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from aggregator import __version__
from aggregator.config.load import Config, SourceConfig, load_config
from aggregator.errors import AggregatorError, ConfigError, PublishError, StoreLockedError
from aggregator.log import setup_logging
from aggregator.models import SourceState, UpdateOutcome

if TYPE_CHECKING:
    from aggregator.cluster.workers import WorkerRow
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
    build.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS",
                       help="wait this long for another writer to finish (default 60)")

    run = command("run", _run, "run the scheduler daemon: poll every source on its own schedule and serve feeds")
    run.add_argument("--listen", metavar="HOST:PORT", help="override settings.listen")
    run.add_argument("--role", choices=["worker", "publisher", "web", "all"], default="all",
                     help="with a postgresql:// store: poll (worker), publish (publisher), serve (web) or all "
                          "three (default; the only role of a SQLite store)")

    migrate = command("migrate", _migrate, "bring the store's schema up to date and record feeds.toml as the "
                      "configuration of a PostgreSQL cluster; with --to, copy this SQLite store into PostgreSQL")
    migrate.add_argument("--to", metavar="POSTGRESQL_URL", help="copy the SQLite store into this empty PostgreSQL store")

    serve = command("serve", _serve, "serve the published feeds over HTTP")
    serve.add_argument("--listen", metavar="HOST:PORT", help="override settings.listen")
    serve.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                       help="server processes sharing the address through SO_REUSEPORT (default 1)")

    status = command("status", _status, "one row per source: state, last success, last error, next poll")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    similar = command("similar", _similar, "print the story an item belongs to: each member and its similarity")
    similar.add_argument("item_id", metavar="ITEM_ID", help="the item's article_id (infoCode)")
    similar.add_argument("--json", action="store_true", help="machine-readable output")

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
    config = _load(args)
    unknown = sorted(set(args.source) - {s.name for s in config.sources})
    if unknown:
        print(f"aggregator: unknown source(s): {', '.join(unknown)}", file=sys.stderr)
        return EXIT_CONFIG
    storage = _open_for_poll(config.settings.store)
    publish_error: PublishError | None = None
    published: list[str] = []
    try:
        with storage.writer_lock(args.lock_timeout):
            states = storage.get_source_states()  # the pass's one read of every source's state
            sources = _sources_to_poll(args, config, states)
            outcomes = _poll_pass(config, storage, sources, states, quiet=args.quiet > 0)
            try:
                published = _publish_after_poll(config, storage, outcomes)
            except PublishError as e:  # the feeds that failed stay owed: the next poll or build publishes them
                publish_error = e
    finally:
        storage.close()
    _print_summary(outcomes, published, out)
    if publish_error is not None:
        print(f"aggregator: {publish_error}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _open_for_poll(store: str) -> Storage:
    """A SQLite store serves the states through sqlite3 and loads SQLAlchemy only when the pass needs more
    than states (storage/lite.py): a pass of 304s never does. Other stores open as usual."""
    from aggregator.storage.lite import open_lite_storage

    def open_full() -> Storage:
        from aggregator.storage import open_storage

        return open_storage(store)

    return open_lite_storage(store, open_full) or open_full()


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
    """Fetch concurrently in the event loop; parse and clean in worker processes, one per core.

    Even one source gets a worker: only a separate process can be stopped when a document overruns
    settings.document_budget. Workers start when a document needs parsing (never for a pass of 304s).
    """
    from aggregator.fetch.client import HttpFetcher
    from aggregator.ops.progress import Progress
    from aggregator.update import Updater
    from aggregator.workers import WorkerPool

    progress = None if quiet else Progress(total=len(sources), stream=sys.stderr)
    size = max(1, min(os.cpu_count() or 1, 8, len(sources)))
    with WorkerPool(size, config.settings.document_budget.total_seconds()) as pool:

        async def run_pass() -> list[UpdateOutcome]:
            async with HttpFetcher(config.settings) as fetcher:
                updater = Updater(config, storage, fetcher, workers=pool)
                return await updater.update_sources(
                    sources, on_outcome=progress.on_outcome if progress else None, states=states)

        outcomes = asyncio.run(run_pass())
    if progress:
        progress.close()
    return outcomes


def _publish_after_poll(config: Config, storage: Storage, outcomes: Sequence[UpdateOutcome]) -> list[str]:
    """Republish the categories owed a publish: those this pass changed, and those a killed or failed
    earlier run left owed (storage's publish_owed). The first pass publishes every feed, even empty ones.
    With nothing to publish, the WebSub pings a hub missed earlier are retried (a publish retries them itself)."""
    from aggregator.publish.layout import is_published, output_dir_of

    changed = sorted({c for o in outcomes for c in o.changed_categories} | set(storage.owed_categories()))
    first = not is_published(config)
    if first or changed:  # the renderers are imported only now: a pass of 304s never loads them
        from aggregator.publish.run import publish_categories

        return publish_categories(storage, config, None if first else changed)
    from aggregator.publish.websub import retry_pending_pings

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
    from aggregator.publish.run import publish_categories
    from aggregator.storage import open_storage

    config = _load(args)
    storage = open_storage(config.settings.store)
    try:
        # a publish writes to the store too (it pays the publish debts): one writer at a time
        with storage.writer_lock(args.lock_timeout):
            written = publish_categories(storage, config, None, full_pages=args.pages)
    finally:
        storage.close()
    print(f"rewrote {len(written)} feed(s): {', '.join(written) or 'none changed'}", file=out)
    return EXIT_OK


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from aggregator.daemon.roles import is_shared_store, run_role
    from aggregator.daemon.scheduler import run_daemon

    config = _load(args)  # refuse to start on an invalid config, with the same messages as `check`
    if is_shared_store(config.settings.store):
        return run_role(_config_path(args), args.role, listen=args.listen, env=os.environ)
    if args.role != "all":
        print(f"aggregator: run --role {args.role} needs a postgresql:// store; a SQLite store is polled, "
              "published and served by one process (--role all)", file=sys.stderr)
        return EXIT_CONFIG
    return run_daemon(_config_path(args), listen=args.listen, env=os.environ)


def _migrate(args: argparse.Namespace, out: TextIO) -> int:
    from aggregator.cluster.definitions import record_config
    from aggregator.cluster.workers import new_worker_id
    from aggregator.daemon.roles import is_shared_store
    from aggregator.publish.layout import output_dir_of
    from aggregator.storage import SqlStorage, open_storage
    from aggregator.update import utc_now

    config = _load(args)
    target_url = args.to or config.settings.store
    if args.to is not None and (is_shared_store(config.settings.store) or not is_shared_store(args.to)):
        print("aggregator: migrate --to copies a SQLite store (settings.store) into a postgresql:// URL",
              file=sys.stderr)
        return EXIT_CONFIG
    target = open_storage(target_url)
    try:
        assert isinstance(target, SqlStorage)
        if args.to is not None:
            source = open_storage(config.settings.store)
            try:
                assert isinstance(source, SqlStorage)
                if not _copy_store(source, target, output_dir_of(config), out):
                    return EXIT_ERROR
            finally:
                source.close()
        print(f"{target.url}: schema version {target.schema_version()}", file=out)
        if is_shared_store(target_url):
            record_config(target.engine, config, f"migrate@{new_worker_id()}", utc_now(), force=True)
            print(f"{target.url}: {_config_path(args)} recorded as the cluster's configuration "
                  f"({len(config.sources)} sources)", file=out)
    finally:
        target.close()
    return EXIT_OK


def _copy_store(source: Storage, target: Storage, output_dir: Path, out: TextIO) -> bool:
    """The copy with a progress line per batch on stderr and the verification table on `out`."""
    from aggregator.cluster.migrate import migrate_store
    from aggregator.storage import SqlStorage

    assert isinstance(source, SqlStorage) and isinstance(target, SqlStorage)

    def progress(table: str, copied: int, total: int) -> None:
        print(f"migrate: {table}: {copied}/{total}", file=sys.stderr, flush=True)

    counts = migrate_store(source, target, output_dir, progress)
    width = max(len(c.table) for c in counts)
    print(f"{'table':<{width}}  {'sqlite':>8}  {'postgresql':>10}", file=out)
    for count in counts:
        mark = "ok" if count.matches else "MISMATCH"
        print(f"{count.table:<{width}}  {count.source_rows:>8}  {count.target_rows:>10}  {mark}", file=out)
    if all(count.matches for count in counts):
        print(f"migrate: verified: every row and published file of {source.url} is in {target.url}", file=out)
        return True
    print("aggregator: migrate: the counts differ (see the table above)", file=sys.stderr)
    return False


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    from aggregator.serve.app import serve_forever

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
        rows = status_rows(config, storage.get_source_states(), storage.items_per_source(), utc_now(),
                           storage.story_counts_per_source())
        totals = storage.story_counts()
        workers = _workers_of(storage)
    finally:
        storage.close()
    print(format_status(rows, as_json=args.json), file=out)
    if not args.json:
        print(f"stories: {totals.stories} of two or more items, {totals.merged_items} items merged "
              f"into an earlier item's story", file=out)
    if workers is not None and not args.json:
        from aggregator.ops.status import format_workers

        print(format_workers(workers, utc_now()), file=out)
    return EXIT_OK


def _similar(args: argparse.Namespace, out: TextIO) -> int:
    from aggregator.ops.stories import format_story
    from aggregator.storage import open_storage

    config = _load(args)
    storage = open_storage(config.settings.store)
    try:
        item = storage.get_item(args.item_id)
        members = storage.story_members(args.item_id) if item is not None else []
    finally:
        storage.close()
    if item is None:
        print(f"aggregator: similar: no item {args.item_id} in the store", file=sys.stderr)
        return EXIT_ERROR
    print(format_story(args.item_id, members, as_json=args.json), file=out)
    return EXIT_OK


def _workers_of(storage: Storage) -> list[WorkerRow] | None:
    """The processes of a PostgreSQL store (None for SQLite: one process, no registry)."""
    from aggregator.cluster.workers import list_workers
    from aggregator.storage import SqlStorage

    if not isinstance(storage, SqlStorage) or not storage.is_shared:
        return None
    return list_workers(storage.engine)


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
    from aggregator.publish.run import publish_categories
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
