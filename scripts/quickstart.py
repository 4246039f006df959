#!/usr/bin/env python3
"""Set up ceco-lite in ``.venv`` and open the lessons, build their static site, or run the test suite.

Usage (from the repository root, with nothing but Python >= 3.10 and git)::

    python3 scripts/quickstart.py lessons [jupyter lab options...]   # e.g. --no-browser --port 8899
    python3 scripts/quickstart.py site    [build_site options...]    # e.g. --out DIR --lessons 1 4
    python3 scripts/quickstart.py test    [pytest options...]        # e.g. -k hygiene -x

All three commands

1. create the virtual environment ``.venv`` next to this repository's
   ``pyproject.toml`` if it does not exist yet;
2. install the project into it (``pip install -e '.[test]' -c constraints.txt``:
   the test extra includes the lessons' JupyterLab stack, and ``constraints.txt``
   pins every package to the versions the suite is tested with), skipped when the
   stamp file ``.venv/ceco-lite-install.stamp`` holds the hash of the current
   ``pyproject.toml`` and ``constraints.txt``;
3. register the environment's Python as the Jupyter kernel ``python3`` inside
   ``.venv`` (``python -m ipykernel install --sys-prefix``).

``lessons`` then brings the student's working copies of the lessons up to date
(:func:`sync_lessons`: ``lessons/`` is copied once into the git-ignored folder
``.lessons-work/``; later runs refresh a copy whose code the student has not
edited and put a newer lesson beside an edited one as ``<name>.new.ipynb``) and
runs JupyterLab on that folder with ``scripts/jupyter_lessons_config.py``, whose
pre-save hook drops widget views and widget state from saved notebooks (adding
``--allow-root`` when run as root). The tracked ``lessons/`` are never opened,
so working through them never changes the repository. ``site`` runs
``scripts/build_site.py``: every lesson executed in quick mode, written as HTML
pages with interactive figures into the git-ignored folder ``site/`` (open
``site/index.html``). ``test`` makes sure a Chromium browser exists for the browser test
(installing Debian's ``chromium`` package with apt-get when run as root), then
runs ``python -m pytest`` with the extra options given and exits with pytest's
exit status.

Only the standard library is used, so this file runs before anything is installed.
"""
import sys

if sys.version_info < (3, 10):
    sys.exit(
        "ceco-lite needs Python 3.10 or newer; this is Python "
        + ".".join(str(v) for v in sys.version_info[:3])
        + ". Run this script with a newer python3 (e.g. python3.11 scripts/quickstart.py ...)."
    )

import hashlib
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_DIR = REPO_ROOT / ".venv"
STAMP_FILE = VENV_DIR / "ceco-lite-install.stamp"
#: exact versions for a reproducible environment (the library itself declares ranges)
CONSTRAINTS_FILE = REPO_ROOT / "constraints.txt"
#: bump when the install steps below change, so existing environments are refreshed
STAMP_VERSION = "2"
EXTRAS = "test"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ON_WINDOWS = os.name == "nt"
LESSONS_DIR = REPO_ROOT / "lessons"
#: the student's working copies of the lessons (git-ignored); JupyterLab serves this folder
LESSONS_WORK_DIR = REPO_ROOT / ".lessons-work"
#: JupyterLab configuration of the lessons command (the pre-save hook)
LESSONS_JUPYTER_CONFIG = REPO_ROOT / "scripts" / "jupyter_lessons_config.py"
#: inside the working folder: which version of each tracked file each copy came from
LESSONS_MANIFEST = ".ceco-lessons.json"
#: folders of lessons/ that are outputs of running them, never copied
LESSONS_SKIP = {"runs", ".ipynb_checkpoints", "__pycache__"}


def say(message):
    """Print one progress line, flushed so it interleaves correctly with child output."""
    print("[quickstart] " + message, flush=True)


def fail(message, code=1):
    """Print an error line and exit."""
    print("[quickstart] ERROR: " + message, file=sys.stderr, flush=True)
    sys.exit(code)


def run(cmd, **kwargs):
    """Run a command (echoed), returning its exit status."""
    say("$ " + shlex.join(str(c) for c in cmd))
    return subprocess.call([str(c) for c in cmd], **kwargs)


def venv_python():
    """Path of the virtual environment's interpreter."""
    if ON_WINDOWS:
        return VENV_DIR / "Scripts" / "python.exe"
    return VENV_DIR / "bin" / "python"


def venv_works():
    """True when ``.venv`` holds a Python that starts and is new enough."""
    python = venv_python()
    if not python.exists():
        return False
    check = "import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)"
    return subprocess.call([str(python), "-c", check], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def ensure_venv():
    """Create ``.venv`` with this interpreter unless a working one is there."""
    if venv_works():
        return
    try:
        import venv  # noqa: F401
        import ensurepip  # noqa: F401
    except ImportError as exc:
        fail(
            "Python's '{}' module is missing, so a virtual environment cannot be created. "
            "On Debian/Ubuntu install it with: sudo apt-get install python3-venv "
            "(or python3.X-venv for your version), then run this command again.".format(exc.name)
        )
    clear = ["--clear"] if VENV_DIR.exists() else []
    say("creating the virtual environment {} (Python {})".format(VENV_DIR, sys.version.split()[0]))
    if run([sys.executable, "-m", "venv", *clear, VENV_DIR]) != 0 or not venv_works():
        fail(
            "could not create {}. On Debian/Ubuntu: sudo apt-get install python3-venv; "
            "then delete {} and run this command again.".format(VENV_DIR, VENV_DIR)
        )


def install_fingerprint():
    """Hash of everything that decides what gets installed."""
    digest = hashlib.sha256()
    digest.update(STAMP_VERSION.encode())
    digest.update(EXTRAS.encode())
    digest.update((REPO_ROOT / "pyproject.toml").read_bytes())
    digest.update(CONSTRAINTS_FILE.read_bytes())
    return digest.hexdigest()


def ensure_installed():
    """``pip install -e '.[test]' -c constraints.txt`` and the kernelspec, unless the stamp says it is done."""
    fingerprint = install_fingerprint()
    if STAMP_FILE.exists() and STAMP_FILE.read_text().strip() == fingerprint:
        say("environment up to date ({}); delete {} to force a reinstall".format(VENV_DIR.name, STAMP_FILE.name))
        return
    python = venv_python()
    say("installing ceco-lite and its dependencies into {} (the first time takes a few minutes)".format(VENV_DIR))
    steps = [
        # editable installs from pyproject.toml need pip >= 21.3; a satisfied requirement installs nothing
        [python, "-m", "pip", "install", "--quiet", "pip>=23.1"],
        [python, "-m", "pip", "install", "--progress-bar", "off", "-e", ".[{}]".format(EXTRAS),
         "-c", CONSTRAINTS_FILE],
        # a kernelspec inside the venv that names this interpreter by its absolute path
        [python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3",
         "--display-name", "Python 3 (ceco-lite)"],
    ]
    for step in steps:
        if run(step, cwd=str(REPO_ROOT)) != 0:
            fail("this step failed (see the message above); fix it and run the same command again.")
    tmp = STAMP_FILE.with_name(STAMP_FILE.name + ".tmp")
    tmp.write_text(fingerprint + "\n")
    os.replace(str(tmp), str(STAMP_FILE))


def child_env():
    """Environment for Jupyter and pytest: the venv first on PATH and for Jupyter data files.

    ``JUPYTER_PATH`` puts the venv's kernelspec ahead of any ``python3`` kernel in
    the user's own Jupyter folders, so notebooks always run in this environment.
    """
    env = dict(os.environ)
    bin_dir = venv_python().parent
    env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = str(VENV_DIR)
    jupyter_data = str(VENV_DIR / "share" / "jupyter")
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (jupyter_data, env.get("JUPYTER_PATH", "")) if p)
    env.pop("PYTHONHOME", None)
    return env


def find_chromium():
    """Path of a Chromium-family browser, or None (same search as tests/test_browser.py)."""
    override = os.environ.get("CECO_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def is_root():
    return hasattr(os, "geteuid") and os.geteuid() == 0


def ensure_chromium():
    """Install Debian's chromium for the browser test when it is missing and we may (root + apt-get)."""
    found = find_chromium()
    if found:
        say("browser for the browser test: " + found)
        return
    if is_root() and shutil.which("apt-get"):
        say("Chromium is missing: installing Debian's chromium package for the browser test")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        ok = run(["apt-get", "update", "-q"], env=env, stdin=subprocess.DEVNULL) == 0
        ok = ok and run(["apt-get", "install", "-y", "-q", "chromium"],
                        env=env, stdin=subprocess.DEVNULL) == 0
        if ok and find_chromium():
            return
        say("could not install chromium with apt-get; the browser test will report it")
        return
    say("no Chromium found: the browser test will be skipped. To run it, install Chromium "
        "(sudo apt-get install chromium) or set CECO_CHROMIUM=/path/to/chrome.")


def hand_over(cmd, env):
    """Replace this process by ``cmd`` (POSIX), so signals and the exit status are the child's own."""
    say("$ " + shlex.join(str(c) for c in cmd))
    os.chdir(str(REPO_ROOT))
    args = [str(c) for c in cmd]
    if ON_WINDOWS:  # no real exec on Windows: wait for the child and pass its status on
        try:
            return subprocess.call(args, env=env)
        except KeyboardInterrupt:
            return 130
    os.execve(args[0], args, env)


def lesson_fingerprint(path):
    """Hash of what the student can edit in a file: a notebook's cell types and sources, else its bytes.

    Outputs, execution counts and metadata do not count, so a lesson that was only
    run and saved still matches the tracked version it was copied from.
    """
    data = Path(path).read_bytes()
    if Path(path).suffix == ".ipynb":
        try:
            cells = json.loads(data.decode("utf-8")).get("cells", [])
            data = json.dumps([[c.get("cell_type"), "".join(c.get("source", ""))] for c in cells]).encode()
        except (ValueError, AttributeError):  # not a readable notebook: compare bytes
            pass
    return hashlib.sha256(data).hexdigest()


def sync_lessons(source=LESSONS_DIR, work_dir=LESSONS_WORK_DIR):
    """Copy or refresh the student's working copies of ``source`` in ``work_dir``; return what was done.

    A file missing from ``work_dir`` is copied. When the tracked file changed since
    it was copied (a ``git pull`` brought a new version), the copy is replaced if the
    student has not edited it (same :func:`lesson_fingerprint` as the version it came
    from), and otherwise left alone with the new version written beside it as
    ``<name>.new<suffix>``. ``work_dir/.ceco-lessons.json`` records the fingerprint
    of the tracked version behind each copy. ``source`` itself is only read.
    """
    source, work_dir = Path(source), Path(work_dir)
    manifest_path = work_dir / LESSONS_MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    done = []
    for src in sorted(source.rglob("*")):
        rel = src.relative_to(source)
        if not src.is_file() or LESSONS_SKIP & set(rel.parts):
            continue
        key, dst = rel.as_posix(), work_dir / rel
        tracked, recorded = lesson_fingerprint(src), manifest.get(key)
        if dst.exists() and recorded == tracked:
            continue  # the copy came from this version
        copy = lesson_fingerprint(dst) if dst.exists() else None
        manifest[key] = tracked
        if copy == tracked:
            continue  # already this version (e.g. no record yet): keep it, outputs and all
        if copy is None:
            action = "copied"
        elif copy == recorded:
            action = "updated"
        else:  # edited by the student (or of unknown origin): never overwritten
            dst = dst.with_name(dst.stem + ".new" + dst.suffix)
            action = "kept your edited copy; the new version is"
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        done.append("{} {}".format(action, dst.relative_to(work_dir)))
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = manifest_path.with_name(manifest_path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, manifest_path)
    return done


def lab_command(python, root, extra=()):
    """``python -m jupyter lab`` on ``root`` with the lessons' configuration (the pre-save hook)."""
    lab = [python, "-m", "jupyter", "lab", "--config={}".format(LESSONS_JUPYTER_CONFIG), root]
    if is_root() and "--allow-root" not in extra:
        lab.append("--allow-root")
    return lab + list(extra)


def cmd_lessons(extra):
    for line in sync_lessons():
        say(line)
    say("opening your working copies of the lessons, {} (git-ignored: run, edit and save them freely; "
        "lessons/ stays as committed). Stop JupyterLab with Ctrl+C".format(LESSONS_WORK_DIR))
    return hand_over(lab_command(venv_python(), LESSONS_WORK_DIR, extra), child_env())


def cmd_test(extra):
    ensure_chromium()
    env = child_env()
    data = env.get("CECO_DATA_DIR") or str(REPO_ROOT.parent / "shared" / "data")
    say("real data for the data tests: {} ({})".format(
        data, "found" if Path(data).is_dir() else "not found: tests that need it are skipped; set CECO_DATA_DIR"))
    return hand_over([venv_python(), "-m", "pytest", *extra], env)


def cmd_site(extra):
    return hand_over([venv_python(), REPO_ROOT / "scripts" / "build_site.py", *extra], child_env())


COMMANDS = {"lessons": cmd_lessons, "site": cmd_site, "test": cmd_test}


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        print("\n\n".join(__doc__.split("\n\n")[1:3]), file=sys.stderr)
        return 2
    ensure_venv()
    ensure_installed()
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
