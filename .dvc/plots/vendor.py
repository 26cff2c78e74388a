"""Re-vendor vega, vega-lite and vega-embed into ``template.html`` (the one place they live).

``dvc plots show`` and ``dvc plots diff`` fill the template named by ``plots.html_template``
in ``.dvc/config``. DVC's own page loads the three libraries from a CDN, so without a network
it shows no plot. This template carries their builds inline instead: DVC copies the template
into every ``index.html`` it writes, so the page needs no file beside it and works wherever
``-o DIR`` puts it (a ``<script src>`` relative to the template would break there).

Run it only to change the pins below (it needs the npm registry; nothing at run time does):

    python .dvc/plots/vendor.py

It downloads each pinned package with ``npm pack`` (npm checks the registry's integrity hash),
inlines its UMD build, copies its licence, and writes the licences of every package in the
three dependency trees (the builds bundle the browser-side part of them: d3, vega-*, ...) to
``THIRD-PARTY-NOTICES.txt``. Then update the table in ``README.md`` to the printed lines.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: package -> (exact version, the browser build inside its npm tarball). The majors are the
#: ones DVC's specs are written for: dvc-render's templates say ``vega-lite/v5.json``, and
#: vega-embed 6 is the release line that embeds Vega 5 / Vega-Lite 5 (7 wants Vega 6).
PINS: dict[str, tuple[str, str]] = {
    "vega": ("5.33.1", "build/vega.min.js"),
    "vega-lite": ("5.23.0", "build/vega-lite.min.js"),
    "vega-embed": ("6.29.0", "build/vega-embed.min.js"),
}

#: The vega npm package ships no licence file; its sub-packages from the same repository
#: (vega/vega) do, with the same text. vega-view is one that vega 5.33.1 depends on.
LICENCE_STAND_IN = {"vega": "vega-view"}

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {{refresh_tag}}
    <title>DVC Plot</title>
    <!-- No scripts placeholder on purpose: DVC would fill it with its CDN script tags. -->
{inline}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""

#: What the page must never contain inside a script, or the HTML parser (``</script``,
#: ``<!--``) or DVC's placeholder filling (``str.replace`` of the whole template) would cut
#: or rewrite the library's code.
FORBIDDEN = ("</script", "<!--", "{plot_divs}", "{scripts}", "{refresh_tag}")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def script_block(package: str, version: str, member: str, licence: str, code: str) -> str:
    """One inline ``<script>`` with a comment that names its origin and checksum, which
    ``tests/test_plots_offline.py`` checks against the code below it."""
    for bad in FORBIDDEN:
        if bad in code:
            raise SystemExit(f"{package}@{version} {member} contains {bad!r}; cannot inline it")
    head = f"<!-- {package} {version}: npm {package}@{version} {member}, {licence}, "
    return f"    {head}sha256 {sha256(code)} -->\n    <script>{code}</script>"


def npm(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["npm", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def licence_file(package_dir: Path) -> Path | None:
    for path in sorted(package_dir.iterdir()):
        if path.name.lower().startswith(("license", "licence", "copying")):
            return path
    return None


def is_package_root(folder: Path) -> bool:
    """``node_modules/NAME`` or ``node_modules/@SCOPE/NAME``, not a package.json that a
    package keeps in one of its own subfolders."""
    parent = folder.parent
    return parent.name == "node_modules" or (
        parent.name.startswith("@") and parent.parent.name == "node_modules"
    )


def third_party_notices(tree: Path) -> str:
    """Every installed package with its licence, packages grouped under one copy of each
    distinct licence text. The whole production tree is listed, a superset of what the
    browser builds bundle (yargs is vega-lite's command line, node-fetch vega's Node
    loader), since the minified builds carry no record of which modules they hold."""
    groups: dict[str, list[str]] = {}
    for manifest in sorted(tree.glob("node_modules/**/package.json")):
        if not is_package_root(manifest.parent):
            continue
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        name, version, spdx = meta["name"], meta["version"], meta.get("license", "UNKNOWN")
        found = licence_file(manifest.parent)
        text = found.read_text(encoding="utf-8").strip() if found else ""
        key = text or f"(no licence file in the npm package; package.json says {spdx})"
        groups.setdefault(key, []).append(f"{name}@{version} ({spdx})")
    parts = [
        "Licences of the npm packages in the dependency trees of "
        + ", ".join(f"{p}@{v}" for p, (v, _) in PINS.items())
        + ",\nas `npm install --omit=dev --omit=optional` resolved them when template.html was\n"
        "written.\n"
        "The vega-* packages without a licence file come from the vega/vega repository and\n"
        "are under the same BSD-3-Clause text as its packages that ship one (LICENSE-vega.txt).\n"
    ]
    for text, packages in sorted(groups.items(), key=lambda kv: sorted(kv[1])[0]):
        parts.append("=" * 78 + "\n" + "\n".join(sorted(packages)) + "\n\n" + text + "\n")
    return "\n".join(parts)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        specs = [f"{p}@{v}" for p, (v, _) in PINS.items()]
        packed = json.loads(npm("pack", "--json", *specs, cwd=work))
        install = ["--omit=dev", "--omit=optional", "--ignore-scripts", "--no-package-lock"]
        npm("install", *install, "--no-audit", "--no-fund", *specs, cwd=work)
        blocks, rows = [], []
        for (package, (version, member)), info in zip(PINS.items(), packed, strict=True):
            with tarfile.open(work / info["filename"]) as tar:
                code = tar.extractfile(f"package/{member}").read().decode("utf-8")
            spdx = json.loads((work / "node_modules" / package / "package.json").read_text())[
                "license"
            ]
            source = work / "node_modules" / LICENCE_STAND_IN.get(package, package)
            (HERE / f"LICENSE-{package}.txt").write_text(
                licence_file(source).read_text(encoding="utf-8"), encoding="utf-8"
            )
            blocks.append(script_block(package, version, member, spdx, code))
            rows.append(
                f"| {package} | {version} | `{member}` | {spdx} | `{sha256(code)}` | "
                f"`{info['integrity']}` |"
            )
        (HERE / "template.html").write_text(PAGE.format(inline="\n".join(blocks)), encoding="utf-8")
        (HERE / "THIRD-PARTY-NOTICES.txt").write_text(third_party_notices(work), encoding="utf-8")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
