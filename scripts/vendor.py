"""`make vendor`: fetch the chat page's pinned JavaScript libraries from npm and verify them.

The page renders markdown with marked and sanitizes the result with DOMPurify. Both are
committed under backend/app/web/static/vendor/, so `make run` needs neither Node nor the
network. This script re-creates those files from the npm registry with `npm pack NAME@VERSION`
(npm checks the tarball against the registry's integrity, which must equal the one pinned
here), and writes a file only when its sha256 matches the pin. To upgrade: change a version,
run with --update to print the new pins, review the diff, commit.

`--check` verifies the committed files against the pins without the network (a test runs it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR_DIR = ROOT / "backend" / "app" / "web" / "static" / "vendor"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's sha512, as `npm view NAME@VERSION dist.integrity` shows it
    files: dict[str, tuple[str, str]]  # path in the tarball -> (path under VENDOR_DIR, sha256)


PACKAGES = [
    Package(
        name="marked",
        version="18.2.1",
        integrity="sha512-ii4bxCTCqqwpT86XZWgJNs+ZnAIZksmLGYMViWA7PDIXYIeNo1x6cDdX3JOip9NM/cI6p8z57FxliACboTruMA==",
        files={
            "package/lib/marked.esm.js": (
                "marked/marked.esm.js",
                "5371fea86fd0656b4fc7bea7c94c663109d82789b69433eeee78d42895aa44de",
            ),
            "package/LICENSE": (
                "marked/LICENSE",
                "8e3a3f82f59a60958f56ca08f445647c32a4733dc7ca6c2c46f6eb898471ab9c",
            ),
        },
    ),
    Package(
        name="dompurify",
        version="3.5.0",
        integrity="sha512-LYC0ZkE8P1V42JsRYTwMdme/2ET8SpOc5AA2eOFjP/IadvRd2fwiT4TVz5vkfy0XUx12aS2UaRkTnfVPNOv9vw==",
        files={
            "package/dist/purify.es.mjs": (
                "dompurify/purify.es.mjs",
                "5e8c53cd086a012531fc754ee6a7ad7a02e8a06fc4dadd805b912e128c3f6c58",
            ),
            "package/LICENSE": (
                "dompurify/LICENSE",
                "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
            ),
            "package/LICENSE-MPL": (
                "dompurify/LICENSE-MPL",
                "fab3dd6bdab226f1c08630b1dd917e11fcb4ec5e1e020e2c16f83a0a13863e85",
            ),
        },
    ),
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check() -> list[str]:
    """Problems with the committed files (missing or not matching their pin)."""
    problems = []
    for package in PACKAGES:
        for destination, expected in package.files.values():
            path = VENDOR_DIR / destination
            if not path.is_file():
                problems.append(f"{destination}: missing (run `make vendor`)")
            elif (actual := sha256(path.read_bytes())) != expected:
                problems.append(f"{destination}: sha256 {actual}, pinned {expected}")
    return problems


def fetch(package: Package, workdir: Path, *, update: bool) -> list[str]:
    """`npm pack` one package and write its pinned files; returns the mismatches."""
    spec = f"{package.name}@{package.version}"
    packed = subprocess.run(
        ["npm", "pack", "--json", "--silent", spec],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
    )
    (info,) = json.loads(packed.stdout)
    problems = []
    if info["integrity"] != package.integrity:
        problems.append(f"{spec}: integrity {info['integrity']}, pinned {package.integrity}")
    with tarfile.open(workdir / info["filename"]) as tar:
        for member, (destination, expected) in package.files.items():
            extracted = tar.extractfile(member)
            if extracted is None:
                problems.append(f"{spec}: {member} is not a file")
                continue
            data = extracted.read()
            if sha256(data) != expected:
                problems.append(f"{spec}: {member} sha256 {sha256(data)}, pinned {expected}")
                if not update:
                    continue
            path = VENDOR_DIR / destination
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="verify committed files, offline")
    parser.add_argument(
        "--update", action="store_true", help="write files even when they differ from the pins"
    )
    args = parser.parse_args()
    if args.check:
        problems = check()
    else:
        with tempfile.TemporaryDirectory() as workdir:
            problems = [
                p for pkg in PACKAGES for p in fetch(pkg, Path(workdir), update=args.update)
            ]
    for problem in problems:
        print(problem, file=sys.stderr)  # noqa: T201 - a command-line report
    if not problems:
        print(f"vendored files match their pins ({VENDOR_DIR.relative_to(ROOT)})")  # noqa: T201
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
