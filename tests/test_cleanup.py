"""common.cleanup: a folder a failed command created is removed, unless it holds resumable work."""

from __future__ import annotations

import pytest

from common.cleanup import removed_on_failure


def test_a_new_folder_is_removed_when_the_body_fails(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), removed_on_failure(out):
        (out / "sub").mkdir(parents=True)
        raise KeyboardInterrupt
    assert not out.exists()


def test_an_existing_or_resumable_folder_is_kept(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    with pytest.raises(ValueError), removed_on_failure(old):
        raise ValueError
    assert old.is_dir()
    new = tmp_path / "new"
    with pytest.raises(ValueError), removed_on_failure(new, lambda p: (p / "state").exists()):
        new.mkdir()
        (new / "state").write_text("x")
        raise ValueError
    assert (new / "state").is_file()


def test_success_keeps_the_output(tmp_path):
    with removed_on_failure(tmp_path / "out") as out:
        out.mkdir()
    assert out.is_dir()
