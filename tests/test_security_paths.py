"""Hostile content (issue 8): what tracelens touches, whatever the input says.

Symlink loops, symlinks out of a directory, FIFOs and devices, file names that look like
patterns, nothing written beside the inputs, a user-only cache directory, and an audit hook
showing that no input makes tracelens open another file, connect anywhere or start a process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml_tracelens.cli import app
from tests._hostile import commands, hostile_dump_dir, hostile_otlp, run_tracelens, value

runner = CliRunner()


@pytest.fixture
def hostile_dir(tmp_path: Path) -> Path:
    return hostile_dump_dir(tmp_path)


# --- what is touched -------------------------------------------------------------------------


def _listing(directory: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(directory)), p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in directory.rglob("*")
    )


def test_nothing_is_written_next_to_the_inputs(
    hostile_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip

    (dump,) = hostile_dir.iterdir()
    (hostile_dir / "copy.jsonl.gz").write_bytes(gzip.compress(dump.read_bytes()))
    out, cache = tmp_path / "out", tmp_path / "cache"
    out.mkdir()
    monkeypatch.setenv("TRACELENS_CACHE_DIR", str(cache))
    monkeypatch.setenv("TRACELENS_CACHE_MIN_MB", "0")  # so the cache is written too
    monkeypatch.chdir(hostile_dir)  # a stray relative write would land beside the inputs
    before = _listing(hostile_dir)
    for args in commands(str(hostile_dir), out):
        for attempt in ("fresh", "cached"):
            result = runner.invoke(app, args)
            assert "internal error" not in result.stderr, (args, attempt, result.stderr)
            assert _listing(hostile_dir) == before, (args, attempt)
    assert (out / "converted.parquet").is_file()
    assert any(cache.iterdir())
    # The one exception: convert -o, which writes exactly the file it is told to.
    assert runner.invoke(app, ["convert", str(hostile_dir), "-o", "here.parquet"]).exit_code == 0
    assert {p[0] for p in _listing(hostile_dir)} - {p[0] for p in before} == {"here.parquet"}


def test_cache_directory_and_entries_are_user_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "d.jsonl"
    dump.write_text(hostile_otlp(["a", "b"]) + "\n")
    cache = tmp_path / "deep" / "cache"
    monkeypatch.setenv("TRACELENS_CACHE_DIR", str(cache))
    monkeypatch.setenv("TRACELENS_CACHE_MIN_MB", "0")
    old = os.umask(0)  # the most permissive umask must not leak into the cache
    try:
        assert runner.invoke(app, ["summary", str(dump)]).exit_code == 0
    finally:
        os.umask(old)
    assert cache.stat().st_mode & 0o777 == 0o700
    entries = list(cache.iterdir())
    assert entries
    assert all(e.stat().st_mode & 0o777 == 0o600 for e in entries)


def test_a_cache_directory_others_can_write_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml_tracelens.ingest import cache as cache_module
    from ml_tracelens.readers.base import ReadOptions

    dump = tmp_path / "d.jsonl"
    dump.write_text(hostile_otlp(["a", "b"]) + "\n")
    monkeypatch.setenv("TRACELENS_CACHE_MIN_MB", "0")
    private = tmp_path / "private"
    monkeypatch.setenv("TRACELENS_CACHE_DIR", str(private))
    assert runner.invoke(app, ["summary", str(dump)]).exit_code == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could plant an entry here
    for entry in private.iterdir():
        (shared / entry.name).write_bytes(entry.read_bytes())
    planted = _listing(shared)
    monkeypatch.setenv("TRACELENS_CACHE_DIR", str(shared))
    key = cache_module.cache_key([str(dump)], input_format=None, options=ReadOptions())
    assert key is not None
    assert cache_module.load(key) is None
    dump.write_text(hostile_otlp(["a", "b", "c"]) + "\n")  # a new key: a store is attempted
    assert runner.invoke(app, ["summary", str(dump)]).exit_code == 0
    assert _listing(shared) == planted


def _tree_with_loops(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "sub" / "deeper" / "t.jsonl").write_text(hostile_otlp(["inside"]) + "\n")
    (root / "loop").symlink_to(".")
    (root / "sub" / "up").symlink_to("..")
    (root / "sub" / "deeper" / "top").symlink_to(root)
    (root / "sub" / "again").symlink_to("deeper")


def test_directory_and_glob_inputs_do_not_follow_symlink_loops(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    _tree_with_loops(root)
    for target in (str(root), str(root / "**" / "*.jsonl"), str(root / "**")):
        result = runner.invoke(app, ["summary", target, "--format", "json"])
        assert result.exit_code == 0, (target, result.stderr)
        document = json.loads(result.stdout)
        assert [i["path"] for i in document["inputs"]] == [str(root / "sub/deeper/t.jsonl")]
        assert document["spans"] == 2
    assert "symlinked directory is not followed" in result.stderr


def test_symlinks_out_of_a_directory_are_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.jsonl"
    secret.write_text(hostile_otlp(["secret-stage"], service="secret-service") + "\n")
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (dumps / "ok.jsonl").write_text(hostile_otlp(["fine"]) + "\n")
    (dumps / "link.jsonl").symlink_to(secret)
    (dumps / "zero.jsonl").symlink_to("/dev/zero")
    result = runner.invoke(app, ["latency", str(dumps), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert "secret" not in result.stdout
    assert "link.jsonl: skipped, a symlink to a file outside" in result.stderr
    # Named explicitly, the link is the user's choice and is read.
    explicit = runner.invoke(app, ["latency", str(dumps / "link.jsonl"), "--format", "json"])
    assert "secret-stage" in explicit.stdout


def test_a_file_name_is_never_a_pattern(tmp_path: Path) -> None:
    # polars expands globs in the paths it is given: "a[1].parquet" would read a1.parquet.
    for name, stage in (("a[1].parquet", "right"), ("a1.parquet", "decoy")):
        dump = tmp_path / f"{stage}.jsonl"
        dump.write_text(hostile_otlp([stage]) + "\n")
        assert runner.invoke(app, ["convert", str(dump), "-o", str(tmp_path / name)]).exit_code == 0
    result = runner.invoke(app, ["latency", str(tmp_path / "a[1].parquet"), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert {row["stage"] for row in json.loads(result.stdout)["rows"]} == {"root", "right"}


def test_a_file_the_kernel_refuses_to_read_is_an_input_error() -> None:
    if not Path("/proc/self/mem").exists():
        pytest.skip("no /proc")
    result = runner.invoke(app, ["summary", "/proc/self/mem"])  # regular, but reads fail (EIO)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: /proc/self/mem: cannot read")


def test_fifos_and_devices_in_a_directory_are_skipped_not_opened(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (dumps / "ok.jsonl").write_text(hostile_otlp(["fine"]) + "\n")
    os.mkfifo(dumps / "pipe.jsonl")  # opening it would block: nobody writes
    (dumps / "null.jsonl").symlink_to("/dev/null")
    result = run_tracelens("summary", str(dumps), "--format", "json", timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["spans"] == 2
    assert "pipe.jsonl: skipped, not a regular file (name it explicitly" in result.stderr
    assert "null.jsonl: skipped" in result.stderr  # a device, and outside the directory


def test_a_fifo_named_explicitly_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "live.jsonl"
    os.mkfifo(fifo)
    payload = (hostile_otlp(["from-fifo"]) + "\n").encode()

    def write() -> None:
        with fifo.open("wb") as stream:
            stream.write(payload)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        # With the cache on, inputs are resolved twice (cache key, then read): the pipe must
        # be read once, on first use.
        env = {"TRACELENS_CACHE_MIN_MB": "0", "TRACELENS_CACHE_DIR": str(tmp_path / "c")}
        result = run_tracelens("latency", str(fifo), "--format", "json", env=env, timeout=60)
    finally:
        if writer.is_alive():  # tracelens never opened it: unblock the writer
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=10)
    assert result.returncode == 0, result.stderr
    assert "from-fifo" in {row["stage"] for row in json.loads(result.stdout)["rows"]}


# --- no code, no network, no other files ------------------------------------------------------

_AUDIT = r"""
import json, sys
events = []
def hook(event, args):
    if event == "open" and isinstance(args[0], str):
        events.append(["open", args[0]])
    elif event.split(".")[0] in ("socket", "subprocess", "webbrowser", "urllib", "http", "ftplib",
                                 "smtplib") or event.startswith(
                                 ("os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
                                  "os.startfile", "pty.")):
        events.append([event, repr(args)[:120]])
sys.addaudithook(hook)
from ml_tracelens.cli import main
for argv in json.loads(sys.argv[2]):
    sys.argv = ["tracelens", *argv]
    try:
        main()
    except SystemExit:
        pass
with open(__import__("os").environ["AUDIT_OUT"], "w") as out:
    json.dump(events, out)
"""


def test_inputs_cannot_make_tracelens_open_files_connect_or_run_code(tmp_path: Path) -> None:
    inputs, work, out = tmp_path / "inputs", tmp_path / "work", tmp_path / "out"
    for directory in (inputs, work, out):
        directory.mkdir()
    secret = tmp_path / "secret.json"
    secret.write_text('{"never": "read"}')
    (work / "ref.json").write_text('{"never": "read"}')  # relative to the working directory
    (inputs / "tracelens.toml").write_text('budgets = ["p95<1ms"]\n')  # only ./ is read
    lures = [
        str(secret),
        f"file://{secret}",
        "http://127.0.0.1:9/x",
        "https://evil.example/a.json",
        "~/.ssh/id_rsa",
        "${HOME}/.netrc",
        "ref.json",
        "./ref.json",
        "../secret.json",
        "__import__('os').system('touch pwned')",
        "{{7*7}} %(x)s {0.__class__}",
    ]
    line = json.loads(hostile_otlp(lures))
    span = line["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    span["attributes"].append({"key": "$ref", "value": value(str(secret))})
    (inputs / "dump.jsonl").write_text(json.dumps(line) + "\n")
    jaeger = {"data": [{"traceID": "1", "spans": [], "processes": {}, "$ref": str(secret)}]}
    (inputs / "jaeger.json").write_text(json.dumps(jaeger))
    dump = str(inputs / "dump.jsonl")
    argvs = [*commands(dump, out), ["summary", str(inputs)], ["check", dump]]
    env = {"AUDIT_OUT": str(tmp_path / "events.json"), "TRACELENS_CACHE_DIR": str(out / "c")}
    result = subprocess.run(
        [sys.executable, "-c", _AUDIT, "-", json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
        cwd=work,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    events = json.loads((tmp_path / "events.json").read_text())
    assert [e for e in events if e[0] != "open"] == []
    opened = {os.path.realpath(e[1]) for e in events}
    forbidden = {secret, work / "ref.json", inputs / "tracelens.toml"}
    forbidden |= {Path("/etc/passwd"), Path.home() / ".ssh/id_rsa", Path.home() / ".netrc"}
    assert opened & {os.path.realpath(p) for p in forbidden} == set()
    assert not (work / "pwned").exists()
    assert not (inputs / "pwned").exists()
    assert os.path.realpath(dump) in opened  # the hook did see the reads
