"""`barid backup` / `barid restore` on an initialised gateway: what the archive holds
(everything encrypted, nothing readable without the passphrase) and how restore
refuses a truncated, altered or incomplete archive, a wrong passphrase or a
non-empty directory with one line, before writing anything."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from admin.restore import point_data_dir_here

PASSPHRASE = "a long enough passphrase"


@pytest.fixture
def archive(barid: Any, tmp_path: Path) -> Path:
    (tmp_path / "pp").write_text(PASSPHRASE + "\n")
    dest = tmp_path / "b.tar"
    result = barid("backup", str(dest), "--passphrase-file", str(tmp_path / "pp"), "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["archive"] == str(dest) and report["database"]["kind"] == "sqlite"
    return dest


def one_line_refusal(result: Any, *words: str) -> str:
    assert result.code != 0
    errors = [line for line in result.err.splitlines() if line.startswith("barid: ")]
    assert len(errors) == 1, result.err
    assert result.err.rstrip().splitlines()[-1] == errors[0]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def restore(barid: Any, src: Path, target: Path, passphrase: str = PASSPHRASE) -> Any:
    return barid("restore", str(src), "--data-dir", str(target), stdin=passphrase + "\n")


def test_round_trip_restores_every_file_byte_for_byte(
    barid: Any, archive: Path, tmp_path: Path
) -> None:
    data, target = tmp_path / "data", tmp_path / "restored"
    result = restore(barid, archive, target)
    assert result.code == 0, result.err
    for name in ("barid.toml", "policies.yaml", "keys/master.key", "keys/signing-ed25519.pem",
                 "keys/dkim-rsa.pem", "tls/cert.pem", "tls/key.pem"):  # fmt: skip
        assert (target / name).read_bytes() == (data / name).read_bytes(), name
        assert (target / name).stat().st_mode & 0o777 == (data / name).stat().st_mode & 0o777
    assert (target / "barid.db").exists()
    audit = barid("audit", "verify", "--config", str(target / "barid.toml"), "--json")
    assert audit.code == 0 and json.loads(audit.out)["ok"], audit.err


def test_nothing_in_the_archive_is_readable_without_the_passphrase(
    barid: Any, archive: Path, tmp_path: Path
) -> None:
    raw = archive.read_bytes()
    data = tmp_path / "data"
    master = (data / "keys" / "master.key").read_bytes().strip()
    assert master not in raw
    assert b"PRIVATE KEY" not in raw and b"[server]" not in raw and b"SQLite format" not in raw
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == "header.json" and names[-1] == "manifest.json"
    assert archive.stat().st_mode & 0o777 == 0o600


def test_a_wrong_passphrase_is_refused(barid: Any, archive: Path, tmp_path: Path) -> None:
    target = tmp_path / "restored"
    one_line_refusal(restore(barid, archive, target, "not the passphrase"), "wrong passphrase")
    assert not target.exists()


@pytest.mark.parametrize("where", ["1024 bytes", "half", "inside the manifest", "end marker"])
def test_a_truncated_archive_is_refused_and_nothing_written(
    barid: Any, archive: Path, tmp_path: Path, where: str
) -> None:
    raw = archive.read_bytes()
    manifest, size = _member_offset(archive, "manifest.json")
    cut = {"1024 bytes": 1024, "half": len(raw) // 2, "inside the manifest": manifest + size // 2,
           "end marker": manifest + size + 100}[where]  # fmt: skip
    short = tmp_path / "short.tar"
    short.write_bytes(raw[:cut])
    target = tmp_path / "restored"
    line = one_line_refusal(restore(barid, short, target), "nothing was restored")
    assert "truncated" in line or "incomplete" in line
    assert not target.exists()


def _member_offset(archive: Path, name_prefix: str) -> tuple[int, int]:
    with tarfile.open(archive) as tar:
        for info in tar:
            if info.name.startswith(name_prefix):
                return info.offset_data, info.size
    raise AssertionError(name_prefix)


@pytest.mark.parametrize("member", ["database/", "files/0001"])
def test_one_flipped_byte_in_a_member_is_refused_and_nothing_written(
    barid: Any, archive: Path, tmp_path: Path, member: str
) -> None:
    raw = bytearray(archive.read_bytes())
    offset, size = _member_offset(archive, member)
    raw[offset + size // 2] ^= 0x01
    damaged = tmp_path / "damaged.tar"
    damaged.write_bytes(bytes(raw))
    target = tmp_path / "restored"
    target.mkdir()  # an empty directory is accepted as a target, and stays empty
    one_line_refusal(restore(barid, damaged, target), "damaged", "nothing was restored")
    assert list(target.iterdir()) == []


def _rewrite(archive: Path, dest: Path, change: Any) -> None:
    """Copy `archive` to `dest` with member contents passed through `change(name, bytes)`."""
    with tarfile.open(archive) as src, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        for info in src:
            stream = src.extractfile(info)
            assert stream is not None
            data = change(info.name, stream.read())
            if data is None:
                continue
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


def test_an_edited_manifest_is_refused(barid: Any, archive: Path, tmp_path: Path) -> None:
    def edit(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        outer = json.loads(data)
        files = outer["manifest"]["metadata"]["files"]
        files[0]["path"] = "somewhere-else"  # an attacker redirects a file...
        return json.dumps(outer).encode()  # ...but cannot re-sign the manifest

    edited = tmp_path / "edited.tar"
    _rewrite(archive, edited, edit)
    target = tmp_path / "restored"
    one_line_refusal(restore(barid, edited, target), "manifest was altered")
    assert not target.exists()


def test_a_missing_or_added_member_is_refused(barid: Any, archive: Path, tmp_path: Path) -> None:
    dropped = tmp_path / "dropped.tar"
    _rewrite(archive, dropped, lambda name, data: None if name == "files/0002" else data)
    one_line_refusal(restore(barid, dropped, tmp_path / "r1"), "incomplete", "files/0002")
    assert not (tmp_path / "r1").exists()
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    added = tmp_path / "added.tar"
    _rewrite(archive, added, lambda name, data: data)
    with tarfile.open(archive) as src, tarfile.open(added, "w") as out:
        for info in src:
            if info.name == names[-1]:
                extra = tarfile.TarInfo("files/9999")
                extra.size = 3
                out.addfile(extra, io.BytesIO(b"abc"))
            out.addfile(info, src.extractfile(info))
    one_line_refusal(restore(barid, added, tmp_path / "r2"), "does not list")
    assert not (tmp_path / "r2").exists()


def test_restore_refuses_a_non_empty_directory(barid: Any, archive: Path, tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    one_line_refusal(restore(barid, archive, target), "not empty")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def test_backup_refuses_an_existing_file_and_a_short_passphrase(
    barid: Any, archive: Path, tmp_path: Path
) -> None:
    one_line_refusal(barid("backup", str(archive), stdin=PASSPHRASE + "\n"), "already exists")
    one_line_refusal(barid("backup", str(tmp_path / "new.tar"), stdin="short\n"), "12 characters")
    assert not (tmp_path / "new.tar").exists()
    result = barid("backup", str(tmp_path / "new.tar"), "--json", stdin=PASSPHRASE + "\n")
    assert result.code == 0, result.err  # the passphrase from stdin
    assert restore(barid, tmp_path / "new.tar", tmp_path / "r").code == 0


def test_a_configuration_outside_the_data_dir_is_pointed_at_the_new_one() -> None:
    text = '[server]\ndata_dir = "/var/lib/barid"\nhostname = "x"\n\n[smtp]\nlisten = "::"\n'
    assert point_data_dir_here(text).splitlines()[1] == 'data_dir = "."'
    assert point_data_dir_here('[smtp]\nlisten = "::"\n').startswith('[server]\ndata_dir = "."')
    assert 'data_dir = "."' in point_data_dir_here('[server]\nhostname = "x"\n')


def test_backup_refuses_a_destination_inside_the_data_dir(barid: Any, tmp_path: Path) -> None:
    inside = tmp_path / "data" / "b.tar"
    one_line_refusal(barid("backup", str(inside), stdin=PASSPHRASE + "\n"), "outside the data")
    assert not inside.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership of files made by root")
def test_a_backup_run_by_root_leaves_the_database_files_to_their_owner(
    barid: Any, tmp_path: Path
) -> None:
    database = tmp_path / "data" / "barid.db"
    for side in ("barid.db-wal", "barid.db-shm"):
        (tmp_path / "data" / side).unlink(missing_ok=True)
    os.chown(database, 65534, 65534)  # as if the gateway's own user owned it
    result = barid("backup", str(tmp_path / "b.tar"), stdin=PASSPHRASE + "\n")
    assert result.code == 0, result.err
    for side in ("barid.db-wal", "barid.db-shm"):
        path = tmp_path / "data" / side
        if path.exists():
            assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534), side
