#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Build the pjsua2 Python binding from pjproject source and cache the wheel.

Run it with the interpreter that will use pjsua2:

    python telephony/build/build_pjsua2.py [--install] [--force]
        [--tarball PATH --sha256 HEX] [--subdir PATH_INSIDE_TARBALL]
        [--cache-dir DIR] [--jobs N] [--no-swig-threads]

With no --tarball, the source is Debian's `ring` (Jami) source package for
bookworm. It embeds pjproject 2.12.1, and Debian's pjproject security patch
is applied to it. Any other pjproject source tarball can be used instead
with --tarball and --sha256 (or HOTLINE_PJPROJECT_TARBALL and
HOTLINE_PJPROJECT_SHA256).

The wheel is cached under
${HOTLINE_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/hotline}/pjsua2/<key>/,
where <key> hashes every build input. A cached wheel is reused without
building. See README.md next to this file.

Standard library only.
"""

import argparse
import contextlib
import fcntl
import functools
import gzip
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import textwrap
import time
from pathlib import Path

# Bump when the build procedure changes in a way that changes the wheel
# without changing any other input of the cache key.
FORMAT_VERSION = 1

HERE = Path(__file__).resolve().parent
CONFIG_SITE = HERE / "config_site.h"
PATCH_DIR = HERE / "patches"

TAG = "[pjsua2-build]"

# --- the default source: Debian bookworm's `ring` source package -----------
DEB_SRC_PACKAGE = "ring"
DEFAULT_TARBALL_NAME = "ring_20230206.0~ds2.orig.tar.gz"
DEFAULT_SHA256 = "028661c72b962a32d30a310f5f24e77540c96c479576e886bc3a0a8e9ececff0"
_PJ_COMMIT = "3b78ef1c48732d238ba284cdccb04dc6de79c54f"
DEFAULT_SUBDIR = (
    f"jami-20230206.0/daemon/contrib/tarballs-unpacked/pjproject-{_PJ_COMMIT}.tar.gz/pjproject-{_PJ_COMMIT}"
)
# Debian packaging tarballs for that orig tarball: glob and known hashes.
# One that is not listed here must be verified against its .dsc (which apt
# has checked against the signed archive index when it downloaded it).
DEBIAN_TARBALL_GLOB = "ring_20230206.0~ds2-*.debian.tar.xz"
KNOWN_DEBIAN_TARBALLS = {
    "ring_20230206.0~ds2-1.1+deb12u1.debian.tar.xz": (
        "236ca4188210e66296e4d41c177b3716585fe52296dab08c958759d8cb9c2b8e"
    ),
}
DEB_SRC_LIST = Path("/etc/apt/sources.list.d/hotline-deb-src.sources")
DEB_SRC_CONTENT = """\
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

# --- build settings (all part of the cache key) -----------------------------
APT_PACKAGES = ["build-essential", "pkg-config", "swig", "libssl-dev", "uuid-dev", "libopus-dev", "patch"]
CFLAGS = "-fPIC -O2"
CONFIGURE_FLAGS = [
    "--disable-shared",
    "--disable-sound",
    "--disable-video",
    "--enable-epoll",
    # Debian's repack of the ring source removed these third-party codecs
    # and libraries (their build rules are still there and would fail); we
    # do not need them anyway. G.711, G.722, L16 and Opus stay.
    "--disable-speex-codec",
    "--disable-speex-aec",
    "--disable-gsm-codec",
    "--disable-ilbc-codec",
    "--disable-g7221-codec",
    "--disable-libyuv",
    # No echo canceller is used without a sound device.
    "--disable-libwebrtc",
    # Never pick up optional system libraries by accident: the wheel must
    # depend only on libssl3, libopus0 and libuuid1.
    "--disable-sdl",
    "--disable-ffmpeg",
    "--disable-v4l2",
    "--disable-openh264",
    "--disable-vpx",
    "--disable-bcg729",
    "--disable-silk",
    "--disable-opencore-amr",
]
# SWIG flags for the Python module. "-threads" makes the wrapper release the
# GIL around calls into pjsua2 and take it in director callbacks, so that
# Python callbacks invoked from pjsip threads (e.g. AudioMediaPlayer.onEof2
# on the conference-bridge clock thread) hold the GIL. 2.12.1's Makefile
# ships this line commented out.
SWIG_THREADS = "-threads -DSWIG_NO_EXPORT_ITERATOR_METHODS"


class BuildError(Exception):
    def __init__(self, step, message, log=None):
        super().__init__(message)
        self.step = step
        self.log = log


def say(msg):
    print(f"{TAG} {msg}", flush=True)


@contextlib.contextmanager
def step(name, what):
    say(f"{name}: {what}")
    t0 = time.monotonic()
    yield
    say(f"{name}: done in {time.monotonic() - t0:.1f}s")


class Log:
    """Build log in the build dir; subprocess output goes here."""

    def __init__(self, path):
        self.path = path
        # Kept open across steps; closed by close().
        self.fh = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115

    def write(self, text):
        self.fh.write(text)
        self.fh.flush()

    def run(self, stepname, cmd, cwd=None, env=None):
        self.write(f"\n===== [{stepname}] $ {shlex.join(map(str, cmd))}   (cwd={cwd})\n")
        try:
            rc = subprocess.run(
                [str(c) for c in cmd],
                cwd=cwd,
                env=env,
                stdout=self.fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            ).returncode
        except OSError as e:
            raise BuildError(stepname, f"cannot run {cmd[0]}: {e}", self.path) from e
        self.fh.flush()
        if rc != 0:
            raise BuildError(
                stepname, f"command failed with exit code {rc}: {shlex.join(map(str, cmd))}", self.path
            )

    def close(self):
        self.fh.close()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_quiet(cmd, **kw):
    return subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL, **kw
    )


def cache_root(arg):
    if arg:
        return Path(arg).expanduser().resolve()
    if os.environ.get("HOTLINE_CACHE_DIR"):
        return Path(os.environ["HOTLINE_CACHE_DIR"]).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return (Path(xdg) / "hotline").resolve()


# --------------------------------------------------------------------------
# Getting the default source with apt
# --------------------------------------------------------------------------
def ensure_deb_src():
    if DEB_SRC_LIST.exists():
        return
    if os.geteuid() != 0:
        raise BuildError(
            "download",
            f"{DEB_SRC_LIST} is missing and this is not root: "
            f"create it with a deb-src entry for bookworm main, or pass "
            f"--tarball/--sha256",
        )
    say(f"download: writing {DEB_SRC_LIST} (deb-src for bookworm and bookworm-security main)")
    DEB_SRC_LIST.write_text(DEB_SRC_CONTENT)


def apt_source_download(downloads):
    """`apt-get source --download-only ring` into downloads/."""
    if not shutil.which("apt-get"):
        raise BuildError(
            "download",
            "apt-get not found: cannot fetch the "
            f"{DEB_SRC_PACKAGE} source package; pass "
            "--tarball PATH --sha256 HEX instead",
        )
    ensure_deb_src()
    downloads.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="apt-source-", dir=downloads))
    try:
        showsrc = run_quiet(["apt-cache", "showsrc", DEB_SRC_PACKAGE])
        if showsrc.returncode != 0 or "Version:" not in showsrc.stdout:
            say(f"download: apt-get update (no source index for {DEB_SRC_PACKAGE} yet)")
            r = run_quiet(["apt-get", "update"])
            if r.returncode != 0:
                raise BuildError("download", "apt-get update failed:\n" + tail_text(r.stdout))
        say(f"download: apt-get source --download-only {DEB_SRC_PACKAGE}")
        # apt drops privileges to _apt, which must be able to write here.
        os.chmod(tmp, 0o777)
        r = run_quiet(["apt-get", "source", "--download-only", DEB_SRC_PACKAGE], cwd=tmp)
        if r.returncode != 0:
            raise BuildError("download", "apt-get source failed:\n" + tail_text(r.stdout))
        for f in tmp.iterdir():
            os.replace(f, downloads / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def find_debian_tarball(dirs):
    found = []
    for d in dirs:
        found.extend(Path(d).glob(DEBIAN_TARBALL_GLOB))
    if not found:
        return None

    def cmp(a, b):
        va = a.name[len("ring_") : -len(".debian.tar.xz")]
        vb = b.name[len("ring_") : -len(".debian.tar.xz")]
        if va == vb:
            return 0
        r = subprocess.run(["dpkg", "--compare-versions", va, "gt", vb])
        return 1 if r.returncode == 0 else -1

    return max(found, key=functools.cmp_to_key(cmp))


def verify_debian_tarball(path):
    actual = sha256_file(path)
    known = KNOWN_DEBIAN_TARBALLS.get(path.name)
    if known:
        if actual != known:
            raise BuildError(
                "verify", f"sha256 mismatch for {path}:\n  expected {known}\n  actual   {actual}"
            )
        say(f"verify: {path.name} sha256 {actual} OK (known hash)")
        return
    dsc = path.with_name(path.name.replace(".debian.tar.xz", ".dsc"))
    if not dsc.exists():
        raise BuildError(
            "verify",
            f"{path.name} is not a known Debian tarball and there "
            f"is no {dsc.name} next to it to verify it against",
        )
    m = re.search(r"^Checksums-Sha256:\n((?: .*\n)+)", dsc.read_text(), re.M)
    want = None
    for line in m.group(1).splitlines() if m else []:
        parts = line.split()
        if len(parts) == 3 and parts[2] == path.name:
            want = parts[0]
    if want is None:
        raise BuildError("verify", f"{dsc} lists no sha256 for {path.name}")
    if want != actual:
        raise BuildError(
            "verify", f"sha256 mismatch for {path} (per {dsc.name}):\n  expected {want}\n  actual   {actual}"
        )
    say(f"verify: {path.name} sha256 {actual} OK (per {dsc.name})")


# --------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------
HUNK_RE = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


def split_patch(text):
    """Split a unified diff into [(old_path, new_path, hunks_text)].

    Hunks are read by their line counts, so headers and trailers (Index:,
    ====, diff --git, commit messages, "-- " signatures) are dropped."""
    lines = text.splitlines(keepends=True)
    files = []
    i = 0
    while i < len(lines):
        if not (lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")):
            i += 1
            continue
        old = lines[i][4:].rstrip("\r\n").split("\t")[0].strip()
        new = lines[i + 1][4:].rstrip("\r\n").split("\t")[0].strip()
        i += 2
        body = []
        while i < len(lines):
            m = HUNK_RE.match(lines[i])
            if not m:
                break
            n_old = int(m.group(1)) if m.group(1) is not None else 1
            n_new = int(m.group(2)) if m.group(2) is not None else 1
            body.append(lines[i])
            i += 1
            while (n_old > 0 or n_new > 0) and i < len(lines):
                ln = lines[i]
                c = ln[:1]
                if c == "\\":  # "\ No newline at end of file"
                    body.append(ln)
                    i += 1
                    continue
                if c in (" ", "\n", "\r", ""):
                    n_old -= 1
                    n_new -= 1
                elif c == "-":
                    n_old -= 1
                elif c == "+":
                    n_new -= 1
                else:
                    raise BuildError("patch", f"malformed hunk near: {ln!r}")
                body.append(ln)
                i += 1
            while i < len(lines) and lines[i].startswith("\\"):
                body.append(lines[i])
                i += 1
        files.append((old, new, "".join(body)))
    return files


def debian_pjproject_patches(debian_tarball, subdir):
    """Patches from debian/patches/series, reduced to the files under the
    pjproject subtree and rewritten relative to the pjproject root
    (a/... b/..., for patch -p1). Returns [(name, text)]."""
    # Patch paths start with "ring-<ver>/" (or ".orig/") instead of the
    # orig tarball's "jami-<ver>/": match on the rest.
    rel = subdir.strip("/").split("/", 1)[1] + "/"
    out = []
    with tarfile.open(debian_tarball, "r:*") as tf:
        try:
            series = tf.extractfile("debian/patches/series").read().decode()
        except KeyError:
            return out
        for name in series.splitlines():
            name = name.split("#", 1)[0].strip()
            if not name:
                continue
            name = name.split()[0]
            try:
                text = tf.extractfile(f"debian/patches/{name}").read()
            except KeyError:
                raise BuildError(
                    "patch", f"debian/patches/{name} listed in series but missing from {debian_tarball}"
                ) from None
            kept = []
            for old, new, body in split_patch(text.decode("utf-8", "replace")):
                path = new if new != "/dev/null" else old
                parts = path.split("/", 1)
                if len(parts) == 2 and parts[1].startswith(rel):
                    inner = parts[1][len(rel) :]
                    a = "/dev/null" if old == "/dev/null" else f"a/{inner}"
                    b = "/dev/null" if new == "/dev/null" else f"b/{inner}"
                    kept.append(f"--- {a}\n+++ {b}\n{body}")
            if kept:
                out.append((f"debian:{name}", "".join(kept)))
    return out


def extra_patches():
    if not PATCH_DIR.is_dir():
        return []
    return [(f"patches/{p.name}", p.read_text(encoding="utf-8")) for p in sorted(PATCH_DIR.glob("*.patch"))]


def apply_patch(log, name, text, root, pfile_dir):
    pfile = pfile_dir / (re.sub(r"[^A-Za-z0-9_.-]", "_", name))
    pfile.write_text(text, encoding="utf-8")
    base = [
        "patch",
        "-p1",
        "--forward",
        "--batch",
        "--fuzz=0",
        "--no-backup-if-mismatch",
        "-d",
        str(root),
        "-i",
        str(pfile),
    ]
    log.run("patch", [*base, "--dry-run"])
    log.run("patch", base)


# --------------------------------------------------------------------------
# Source tarball
# --------------------------------------------------------------------------
PJ_MARKERS = ("pjsip", "pjlib", "pjsip-apps")


def detect_root(names):
    """Shortest directory that directly holds pjsip/, pjlib/ and
    pjsip-apps/."""
    seen = {}
    for n in names:
        parts = n.strip("/").split("/")
        for i, p in enumerate(parts[:-1]):  # directories only
            if p in PJ_MARKERS:
                seen.setdefault("/".join(parts[:i]), set()).add(p)
    roots = [r for r, s in seen.items() if s == set(PJ_MARKERS)]
    if not roots:
        return None, []
    depth = min(r.count("/") if r else -1 for r in roots)
    best = [r for r in roots if (r.count("/") if r else -1) == depth]
    return (best[0] if len(best) == 1 else None), sorted(roots)


def extract_subtree(tarball, subdir, dest):
    """Extract only <subdir>/ from tarball into dest; returns the path of
    the pjproject root. subdir None = autodetect."""
    with tarfile.open(tarball, "r:*") as tf:
        members = tf.getmembers()
        names = [m.name for m in members]
        if subdir is None:
            subdir, candidates = detect_root(names)
            if subdir is None:
                if candidates:
                    raise BuildError(
                        "extract",
                        "several pjproject roots in "
                        f"{tarball}; pick one with --subdir:\n  " + "\n  ".join(candidates),
                    )
                raise BuildError(
                    "extract", f"no directory holding {', '.join(PJ_MARKERS)} found in {tarball}"
                )
            say(f"extract: pjproject root detected: {subdir or '.'}")
        subdir = subdir.strip("/")
        prefix = subdir + "/" if subdir else ""
        sel = [m for m in members if m.name == subdir or m.name.startswith(prefix)]
        if not sel:
            raise BuildError("extract", f"{subdir!r} not found in {tarball}")
        root = dest / subdir if subdir else dest
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, members=sel, filter="data")
        else:  # Python < 3.11.4: do the basic checks ourselves
            for m in sel:
                if m.name.startswith("/") or ".." in m.name.split("/") or m.issym() or m.islnk() or m.isdev():
                    raise BuildError("extract", f"unsafe member {m.name!r}")
            tf.extractall(dest, members=sel)
    missing = [d for d in PJ_MARKERS if not (root / d).is_dir()]
    if missing:
        raise BuildError(
            "extract", f"{subdir!r} in {tarball} is not a pjproject root (no {', '.join(missing)}/)"
        )
    return subdir, root


# --------------------------------------------------------------------------
# Environment checks
# --------------------------------------------------------------------------
def dpkg_missing(pkgs):
    if not shutil.which("dpkg-query"):
        return None
    missing = []
    for p in pkgs:
        r = run_quiet(["dpkg-query", "-W", "-f=${Status}", p])
        if r.returncode != 0 or "install ok installed" not in r.stdout:
            missing.append(p)
    return missing


def ensure_build_deps():
    missing = dpkg_missing(APT_PACKAGES)
    if missing is None:
        say("deps: no dpkg here; checking tools only")
    elif missing:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise BuildError("deps", "missing packages (install them as root): " + " ".join(missing))
        say("deps: apt-get install " + " ".join(missing))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "--no-install-recommends"]
        r = run_quiet(cmd + missing, env=env)
        if r.returncode != 0:
            say("deps: install failed; running apt-get update and retrying")
            run_quiet(["apt-get", "update"], env=env)
            r = run_quiet(cmd + missing, env=env)
        if r.returncode != 0:
            raise BuildError(
                "deps", "apt-get install failed for " + " ".join(missing) + ":\n" + tail_text(r.stdout)
            )
    else:
        say("deps: apt packages present: " + " ".join(APT_PACKAGES))
    for tool in ("gcc", "g++", "make", "swig", "patch", "pkg-config"):
        if not shutil.which(tool):
            raise BuildError("deps", f"{tool} not found in PATH")
    inc = sysconfig.get_paths()["include"]
    if not Path(inc, "Python.h").exists():
        raise BuildError(
            "deps",
            f"Python.h not found in {inc} (the include "
            f"dir of {sys.executable}); install this "
            "interpreter's development headers",
        )
    r = run_quiet([sys.executable, "-m", "pip", "--version"])
    if r.returncode != 0:
        raise BuildError("deps", f"pip is not available for {sys.executable}")


# --------------------------------------------------------------------------
# Cache key
# --------------------------------------------------------------------------
def os_release():
    info = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                info[k] = v.strip().strip('"')
    except OSError:
        pass
    return {
        "id": info.get("ID", platform.system().lower()),
        "version_id": info.get("VERSION_ID", platform.release()),
    }


def key_inputs(source_sha, subdir, patches, swig_threads):
    return {
        "format_version": FORMAT_VERSION,
        "source_sha256": source_sha,
        "source_subdir": subdir,
        "patches": [[n, hashlib.sha256(t.encode()).hexdigest()] for n, t in patches],
        "config_site_sha256": hashlib.sha256(CONFIG_SITE.read_bytes()).hexdigest(),
        "configure_flags": CONFIGURE_FLAGS,
        "cflags": CFLAGS,
        "swig_flags": SWIG_THREADS if swig_threads else "",
        "python": {
            "cache_tag": sys.implementation.cache_tag,
            "platform": sysconfig.get_platform(),
            "soabi": sysconfig.get_config_var("SOABI"),
        },
        "os": os_release(),
        "machine": platform.machine(),
    }


def compute_key(inputs):
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_wheel(entry):
    if not entry.is_dir():
        return None
    wheels = sorted(entry.glob("pjsua2-*.whl"))
    return wheels[0] if wheels else None


# --------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------
def tail_text(text, n=40):
    return "\n".join(text.splitlines()[-n:])


def build(tarball, subdir, patches, swig_threads, jobs, workroot, log_holder):
    build_dir = Path(tempfile.mkdtemp(prefix="build-", dir=workroot))
    log = Log(build_dir / "build.log")
    log_holder["log"] = log
    log_holder["dir"] = build_dir
    say(f"build: build dir {build_dir}, full log {log.path}")
    timings = {}

    def timed(name):
        class T:
            def __enter__(self):
                self.t0 = time.monotonic()

            def __exit__(self, *a):
                timings[name] = round(time.monotonic() - self.t0, 1)

        return T()

    with step("extract", f"{tarball.name} -> {build_dir / 'src'}"), timed("extract"):
        subdir, root = extract_subtree(tarball, subdir, build_dir / "src")
    version = pj_version(root)
    say(f"extract: pjproject version {version}")

    with step("patch", f"{len(patches)} patch(es)"), timed("patch"):
        pdir = build_dir / "patches"
        pdir.mkdir()
        for name, text in patches:
            say(f"patch: applying {name}")
            apply_patch(log, name, text, root, pdir)
        dst = root / "pjlib/include/pj/config_site.h"
        shutil.copyfile(CONFIG_SITE, dst)
        say(f"patch: installed {CONFIG_SITE.name} as {dst.relative_to(root)}")

    env = dict(os.environ, CFLAGS=CFLAGS)
    env.pop("CXXFLAGS", None)
    env.pop("LDFLAGS", None)
    env["MAKE"] = "make"
    with (
        step("configure", "./configure " + " ".join(CONFIGURE_FLAGS) + f" (CFLAGS={CFLAGS!r})"),
        timed("configure"),
    ):
        log.run("configure", ["./configure", *CONFIGURE_FLAGS], cwd=root, env=env)
    with step("make", "make dep"), timed("make dep"):
        log.run("make", ["make", "dep"], cwd=root, env=env)
    with step("make", f"make -j{jobs} lib"), timed("make lib"):
        log.run("make", ["make", f"-j{jobs}", "lib"], cwd=root, env=env)

    pydir = root / "pjsip-apps/src/swig/python"
    swig = [
        "make",
        "-C",
        str(pydir),
        "pjsua2_wrap.cpp",
        f"PYTHON_EXE={sys.executable}",
        f"USE_THREADS={SWIG_THREADS if swig_threads else ''}",
    ]
    with (
        step(
            "swig",
            "generating pjsua2_wrap.cpp" + (f" with {SWIG_THREADS}" if swig_threads else " (no -threads)"),
        ),
        timed("swig"),
    ):
        log.run("swig", swig, cwd=root, env=env)

    wheelhouse = build_dir / "wheelhouse"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-v",
        "--no-deps",
        "--disable-pip-version-check",
        "--wheel-dir",
        str(wheelhouse),
    ]
    have = run_quiet([sys.executable, "-c", "import setuptools, wheel"])
    if have.returncode == 0:
        pip.append("--no-build-isolation")
        how = "setuptools+wheel of this interpreter"
    else:
        how = "isolated build env (pip fetches setuptools and wheel)"
    pip.append(str(pydir))
    with step("wheel", f"pip wheel ({how})"), timed("wheel"):
        log.run("wheel", pip, cwd=pydir, env=env)
        wheels = sorted(wheelhouse.glob("pjsua2-*.whl"))
        if len(wheels) != 1:
            raise BuildError("wheel", f"expected one pjsua2 wheel in {wheelhouse}, found {wheels}", log.path)
    return wheels[0], subdir, version, timings, build_dir, log


def pj_version(root):
    vals = {}
    try:
        for line in (root / "version.mak").read_text().splitlines():
            m = re.match(
                r"export PJ_VERSION_(MAJOR|MINOR|REV|SUFFIX)\s*:=\s*"
                r"(\S*)",
                line,
            )
            if m:
                vals[m.group(1)] = m.group(2)
    except OSError:
        return "unknown"
    v = f"{vals.get('MAJOR', '?')}.{vals.get('MINOR', '?')}"
    if vals.get("REV"):
        v += "." + vals["REV"]
    return v + vals.get("SUFFIX", "")


def tool_version(cmd):
    r = run_quiet(cmd)
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    return lines[0].strip() if lines else "?"


def store(wheel, entry, meta, log_path):
    tmp = Path(tempfile.mkdtemp(prefix=entry.name + ".tmp-", dir=entry.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
    shutil.copy2(wheel, tmp / wheel.name)
    (tmp / "build-info.json").write_text(json.dumps(meta, indent=2) + "\n")
    with open(log_path, "rb") as src, gzip.open(tmp / "build.log.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    if entry.exists():
        shutil.rmtree(entry)
    os.replace(tmp, entry)
    return entry / wheel.name


# --------------------------------------------------------------------------
# Install and verify
# --------------------------------------------------------------------------
VERIFY_SCRIPT = r"""
import json, sys
import pjsua2 as pj
mode = sys.argv[1]
ep = pj.Endpoint()
ep.libCreate()
cfg = pj.EpConfig()
cfg.uaConfig.threadCnt = 0
cfg.uaConfig.mainThreadOnly = True
cfg.logConfig.level = 1
cfg.logConfig.consoleLevel = 1
cfg.medConfig.clockRate = 8000
cfg.medConfig.sndClockRate = 8000
if mode == "calls":
    # pjsua clamps maxCalls to PJSUA_MAX_CALLS, then raises maxMediaPorts
    # to maxCalls + 2 when it is smaller: that exposes the clamped value.
    cfg.uaConfig.maxCalls = 1000000
    cfg.medConfig.maxMediaPorts = 1
ep.libInit(cfg)
ep.audDevManager().setNullDev()
out = {"version": ep.libVersion().full,
       "mediaMaxPorts": ep.mediaMaxPorts()}
if mode == "calls":
    out["maxCalls"] = ep.mediaMaxPorts() - 2
else:
    ep.libStart()
    out["codecs"] = sorted(c.codecId for c in ep.codecEnum2())
ep.libDestroy()
del ep
print("RESULT " + json.dumps(out))
"""


def config_site_value(name):
    m = re.search(rf"^\s*#\s*define\s+{name}\s+\(?\s*(\d+)\s*\)?\s*$", CONFIG_SITE.read_text(), re.M)
    return int(m.group(1)) if m else None


def install_and_verify(wheel):
    with step("install", f"pip install {wheel.name} into {sys.executable}"):
        r = run_quiet(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--force-reinstall",
                "--no-deps",
                "--no-index",
                "--disable-pip-version-check",
                str(wheel),
            ]
        )
        if r.returncode != 0:
            raise BuildError("install", "pip install failed:\n" + tail_text(r.stdout))
    with step(
        "verify",
        "import pjsua2; libCreate/libInit/libStart/libDestroy with the null sound device; compiled limits",
    ):
        results = {}
        for mode in ("ports", "calls"):
            r = subprocess.run(
                [sys.executable, "-c", VERIFY_SCRIPT, mode],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                stdin=subprocess.DEVNULL,
                cwd=tempfile.gettempdir(),
            )
            line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
            if r.returncode != 0 or not line:
                raise BuildError(
                    "verify", f"pjsua2 check failed (exit {r.returncode}):\n" + tail_text(r.stdout)
                )
            results[mode] = json.loads(line[0][len("RESULT ") :])
        ports = results["ports"]["mediaMaxPorts"]
        calls = results["calls"]["maxCalls"]
        say(
            f"verify: pjsua2 {results['ports']['version']} imports and runs; "
            f"PJSUA_MAX_CALLS={calls}, PJSUA_MAX_CONF_PORTS={ports}"
        )
        say("verify: codecs: " + ", ".join(results["ports"]["codecs"]))
        for name, got in (("PJSUA_MAX_CALLS", calls), ("PJSUA_MAX_CONF_PORTS", ports)):
            want = config_site_value(name)
            if want is not None and want != got:
                raise BuildError("verify", f"{name} is {got} in the built module but {want} in {CONFIG_SITE}")


# --------------------------------------------------------------------------
def parse_args(argv):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent("""\
            environment:
              HOTLINE_PJPROJECT_TARBALL, HOTLINE_PJPROJECT_SHA256
                                 same as --tarball / --sha256
              HOTLINE_CACHE_DIR  same as --cache-dir
            """),
    )
    ap.add_argument(
        "--tarball", help="pjproject source tarball (default: Debian's ring orig tarball, fetched with apt)"
    )
    ap.add_argument("--sha256", help="expected sha256 of --tarball (required with it)")
    ap.add_argument("--subdir", help="pjproject root inside the tarball (default: autodetected)")
    ap.add_argument(
        "--cache-dir",
        help="hotline cache root (default "
        "$HOTLINE_CACHE_DIR or $XDG_CACHE_HOME/hotline or "
        "~/.cache/hotline); wheels go to <it>/pjsua2/<key>/",
    )
    ap.add_argument(
        "--install", action="store_true", help="pip-install the wheel into this interpreter and check it"
    )
    ap.add_argument("--force", action="store_true", help="rebuild even if the wheel is cached")
    ap.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 2, help="parallel make jobs (default: CPU count)"
    )
    ap.add_argument(
        "--no-swig-threads",
        dest="swig_threads",
        action="store_false",
        help=f"build the SWIG module without '{SWIG_THREADS}'",
    )
    return ap.parse_args(argv)


def resolve_source(args, root):
    """Returns (tarball Path, sha256, subdir or None, is_default)."""
    tarball = args.tarball or os.environ.get("HOTLINE_PJPROJECT_TARBALL")
    sha = args.sha256 or os.environ.get("HOTLINE_PJPROJECT_SHA256")
    downloads = root / "downloads"
    if tarball:
        tarball = Path(tarball).expanduser().resolve()
        if not sha:
            raise BuildError(
                "verify", f"no sha256 given for {tarball}: pass --sha256 or HOTLINE_PJPROJECT_SHA256"
            )
        if not tarball.is_file():
            raise BuildError("download", f"tarball {tarball} not found")
    else:
        if sha and sha.lower() != DEFAULT_SHA256:
            raise BuildError(
                "verify",
                "a sha256 was given without a "
                "tarball; it must then be the default "
                f"source's {DEFAULT_SHA256}",
            )
        sha = DEFAULT_SHA256
        tarball = downloads / DEFAULT_TARBALL_NAME
        if tarball.is_file():
            say(f"download: using {tarball}")
        else:
            with step("download", f"Debian source package {DEB_SRC_PACKAGE} into {downloads}"):
                apt_source_download(downloads)
            if not tarball.is_file():
                raise BuildError(
                    "download",
                    f"apt-get source did not "
                    f"produce {DEFAULT_TARBALL_NAME} (a "
                    "different ring version?); pass "
                    "--tarball/--sha256",
                )
    sha = sha.lower()
    with step("verify", f"sha256 of {tarball}"):
        actual = sha256_file(tarball)
        if actual != sha:
            raise BuildError(
                "verify", f"sha256 mismatch for {tarball}:\n  expected {sha}\n  actual   {actual}"
            )
        say(f"verify: sha256 {actual} OK")
    is_default = sha == DEFAULT_SHA256
    subdir = args.subdir
    if subdir is None and is_default:
        subdir = DEFAULT_SUBDIR
    return tarball, sha, subdir, is_default


def default_patches(tarball, root, subdir):
    downloads = root / "downloads"
    deb = find_debian_tarball([tarball.parent, downloads])
    if deb is None:
        with step(
            "download", f"Debian packaging (for its pjproject patches): {DEB_SRC_PACKAGE} into {downloads}"
        ):
            apt_source_download(downloads)
        deb = find_debian_tarball([tarball.parent, downloads])
        if deb is None:
            raise BuildError("download", f"no {DEBIAN_TARBALL_GLOB} found after apt-get source")
    verify_debian_tarball(deb)
    patches = debian_pjproject_patches(deb, subdir)
    if not patches:
        raise BuildError(
            "patch", f"{deb.name} has no patch for the pjproject tree; expected CVE-2023-27585_ring.patch"
        )
    say("patch: from " + deb.name + ": " + ", ".join(n for n, _ in patches))
    return patches


def main(argv=None):
    args = parse_args(argv)
    t_start = time.monotonic()
    root = cache_root(args.cache_dir)
    pjroot = root / "pjsua2"
    pjroot.mkdir(parents=True, exist_ok=True)
    say(f"cache: {pjroot}")
    holder = {}
    current = "setup"
    try:
        current = "verify"
        tarball, sha, subdir, is_default = resolve_source(args, root)
        current = "patch"
        patches = default_patches(tarball, root, subdir) if is_default else []
        extra = extra_patches()
        if extra:
            say("patch: extra: " + ", ".join(n for n, _ in extra))
        patches += extra
        if subdir is None:
            # Autodetect now so the key names the exact tree.
            with tarfile.open(tarball, "r:*") as tf:
                subdir, cands = detect_root(tf.getnames())
            if subdir is None:
                raise BuildError(
                    "extract",
                    "cannot detect the pjproject "
                    f"root in {tarball}; candidates: "
                    f"{cands or 'none'}; pass --subdir",
                )
            say(f"extract: pjproject root detected in {tarball.name}: {subdir or '.'}")
        inputs = key_inputs(sha, subdir, patches, args.swig_threads)
        key = compute_key(inputs)
        entry = pjroot / key
        say(f"cache: key {key}")
        lock_path = pjroot / f"{key}.lock"
        with open(lock_path, "w") as lockf:
            fcntl.flock(lockf, fcntl.LOCK_EX)
            wheel = cached_wheel(entry)
            if wheel and not args.force:
                say(f"cache: using cached wheel {wheel} (key {key})")
            else:
                if wheel:
                    say("cache: --force: rebuilding")
                current = "deps"
                with step("deps", "checking build dependencies"):
                    ensure_build_deps()
                current = "build"
                built, subdir, version, timings, bdir, log = build(
                    tarball, subdir, patches, args.swig_threads, max(1, args.jobs), pjroot, holder
                )
                current = "cache"
                with step("cache", f"storing wheel in {entry}"):
                    meta = {
                        "key": key,
                        "inputs": inputs,
                        "source_tarball": str(tarball),
                        "pjproject_version": version,
                        "wheel": built.name,
                        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "timings_s": timings,
                        "toolchain": {
                            "gcc": tool_version(["gcc", "--version"]),
                            "swig": tool_version(["swig", "-version"]),
                            "python": sys.version.split()[0],
                        },
                        "patches": [n for n, _ in patches],
                    }
                    log.close()
                    wheel = store(built, entry, meta, log.path)
                    shutil.rmtree(bdir, ignore_errors=True)
                    holder.clear()
                    say(f"cache: wheel {wheel}; removed build dir {bdir}")
        if args.install:
            current = "install"
            install_and_verify(wheel)
        say(f"finished in {time.monotonic() - t_start:.1f}s: {wheel}")
        return 0
    except BuildError as e:
        log = e.log or (holder["log"].path if holder.get("log") else None)
        print(f"{TAG} FAILED at step '{e.step or current}': {e}", file=sys.stderr, flush=True)
        if log and Path(log).exists():
            with contextlib.suppress(Exception):
                holder["log"].close()
            lines = Path(log).read_text(errors="replace").splitlines()[-40:]
            print(f"{TAG} ----- last {len(lines)} lines of {log} -----", file=sys.stderr)
            print("\n".join(lines), file=sys.stderr)
            print(
                f"{TAG} ----- end of log; step '{e.step}' failed; full "
                f"log: {log} (build dir kept: {Path(log).parent}) -----",
                file=sys.stderr,
                flush=True,
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())
