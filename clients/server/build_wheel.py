"""Packs a built ``session-backend`` binary into the ``session-backend`` wheel.

    python build_wheel.py --binary PATH --version 0.1.0 --platform manylinux_2_17_x86_64 --out DIR

The wheel holds the binary as a script (pip installs it as the environment's
``session-backend`` command) and the small ``session_backend`` module that finds
it. The platform tag must match the binary: ``cargo xtask wheel`` builds it for
glibc 2.17 and checks the tag with ``auditwheel show``. Prints the wheel's path.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import stat
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DISTRIBUTION = "session_backend"
SUMMARY = "Session storage for Strands agents: the Session Backend service as one binary"


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def metadata(version: str) -> str:
    readme = (HERE / "README.md").read_text()
    return (
        "Metadata-Version: 2.1\n"
        "Name: session-backend\n"
        f"Version: {version}\n"
        f"Summary: {SUMMARY}\n"
        "License: Apache-2.0\n"
        "Requires-Python: >=3.9\n"
        "Description-Content-Type: text/markdown\n"
        "\n"
        f"{readme}"
    )


def wheel_file(platform: str) -> str:
    return (
        "Wheel-Version: 1.0\n"
        "Generator: session-backend clients/server/build_wheel.py\n"
        "Root-Is-Purelib: false\n"
        f"Tag: py3-none-{platform}\n"
    )


def build(binary: Path, version: str, platform: str, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{DISTRIBUTION}-{version}-py3-none-{platform}.whl"
    info = f"{DISTRIBUTION}-{version}.dist-info"
    files: list[tuple[str, bytes, int]] = [
        (f"{DISTRIBUTION}-{version}.data/scripts/session-backend", binary.read_bytes(), 0o755),
    ]
    for module in sorted((HERE / "session_backend").glob("*.py")):
        files.append((f"session_backend/{module.name}", module.read_bytes(), 0o644))
    files += [
        (f"{info}/METADATA", metadata(version).encode(), 0o644),
        (f"{info}/WHEEL", wheel_file(platform).encode(), 0o644),
    ]
    record = [record_line(name, data) for name, data, _ in files] + [f"{info}/RECORD,,"]
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode(), 0o644))
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data, mode in files:
            entry = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            entry.external_attr = (stat.S_IFREG | mode) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--platform", default="manylinux_2_17_x86_64")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(build(args.binary, args.version, args.platform, args.out))


if __name__ == "__main__":
    main()
