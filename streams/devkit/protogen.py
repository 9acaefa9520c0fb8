"""Python code for our Prism proto: generate it (``make proto``) or check it is current.

Why a module rather than a bare protoc line: the same steps run from the Makefile and
from tests/unit/test_prism_proto.py, which regenerates into a temporary directory and
fails when the committed code differs (a ``.proto`` edited without ``make proto``).

The import path needs no post-processing: protoc is given a *virtual* include root,
``-I streams/connectors/prism/gen=proto/prism``, so the file is known to protoc (and to
the descriptor pool, and to server reflection) as
``streams/connectors/prism/gen/payout_service.proto``, and the generated ``_pb2_grpc``
imports ``from streams.connectors.prism.gen import payout_service_pb2`` -- the real
package. protoc's output is deterministic for one grpcio-tools version, which
pyproject.toml pins.

``python -m streams.devkit.protogen``           regenerates in place;
``python -m streams.devkit.protogen --check``   exits 1 naming each stale file.
"""

from __future__ import annotations

import argparse
import importlib.resources
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = Path("proto/prism")  # where we edit the .proto, relative to the repo root
GEN_PACKAGE_DIR = Path("streams/connectors/prism/gen")  # the package it generates into
PROTO_FILES = ("payout_service.proto",)
_OUTPUT_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
# Files in the generated package that protoc does not write (kept, never compared).
HAND_WRITTEN = frozenset({"__init__.py"})


def generated_names() -> list[str]:
    """The file names protoc writes into the generated package, sorted."""
    return sorted(Path(p).stem + s for p in PROTO_FILES for s in _OUTPUT_SUFFIXES)


def generate(out_root: Path, repo_root: Path = REPO_ROOT) -> list[Path]:
    """Run protoc; writes under ``out_root / GEN_PACKAGE_DIR`` and returns those files.

    Raises RuntimeError (with protoc's exit code) when protoc fails; protoc prints the
    reason on stderr.
    """
    from grpc_tools import protoc  # a dev dependency: imported only when generating

    well_known = importlib.resources.files("grpc_tools") / "_proto"
    out_dir = out_root / GEN_PACKAGE_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{GEN_PACKAGE_DIR.as_posix()}={(repo_root / PROTO_DIR).as_posix()}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *[(GEN_PACKAGE_DIR / name).as_posix() for name in PROTO_FILES],
    ]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed (exit code {code})")
    return [out_dir / name for name in generated_names()]


def stale_files(repo_root: Path = REPO_ROOT) -> list[str]:
    """Generated files whose committed copy differs from a fresh generation (or is
    missing), plus stray files in the generated package; empty when all is current."""
    committed = repo_root / GEN_PACKAGE_DIR
    with tempfile.TemporaryDirectory(prefix="protogen-") as tmp:
        fresh = {p.name: p.read_bytes() for p in generate(Path(tmp), repo_root)}
    stale = []
    for name, content in sorted(fresh.items()):
        path = committed / name
        if not path.is_file() or path.read_bytes() != content:
            stale.append((GEN_PACKAGE_DIR / name).as_posix())
    if committed.is_dir():
        for path in sorted(committed.iterdir()):
            if path.is_file() and path.name not in fresh and path.name not in HAND_WRITTEN:
                stale.append(f"{(GEN_PACKAGE_DIR / path.name).as_posix()} (not generated)")
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.devkit.protogen",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true",
                        help="only compare with a fresh generation; exit 1 if stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"stale: {name}", file=sys.stderr)
        if stale:
            print("run `make proto` and commit the result", file=sys.stderr)
        return 1 if stale else 0
    for path in generate(REPO_ROOT):
        print(path.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
