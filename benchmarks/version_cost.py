"""What a new version of the data costs (issue 48): CIFAR-10's JPEGs as a `folder` source in a
fresh project copy, `dvc repro augment` (every data stage) and `dvc push` to a local remote;
then each change to the folder, made, reproduced, committed and pushed in turn:

* add: 1 % of the train images (`--held` per class, held back at first) put back;
* remove: as many of the first version's images taken out;
* relabel: as many moved to the next class's folder;
* then, with `--compact`, 30 % of the images removed and `visionops compact`, against a project
  built from scratch on what is left.

For each version it prints what grew: the DVC cache, the remote (what `dvc push` uploaded) and a
second clone's cache after `git pull && dvc pull` (what a teammate holding the previous version
downloads), in MB and as a share of the data stages' outputs (data/listing, data/raw,
data/validated, data/prepared), with each output's own share of the growth, and the files
rewritten. The rest of the cache's growth is the stages' reports (Data Docs, gallery, results).

    python benchmarks/version_cost.py --cifar ../shared/datasets/cifar10_jpg.tar.gz
    python benchmarks/version_cost.py --cifar ... --per-class 500 --held 5    # quick
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import committed_copy, write_images
from data_growth import changes, growth_parser, hold_back, move, project

OUTPUTS = ("data/listing", "data/raw", "data/validated", "data/prepared")
GROWTH = ("cache", "remote", "teammate")


def sh(command: list[str], cwd: Path) -> str:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # the venv's dvc and python
    env = os.environ | {"DVC_NO_ANALYTICS": "1", "PATH": path}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def output_files(repo: Path) -> dict[str, dict[str, str]]:
    """output -> {relative file: md5} as dvc.lock's .dir manifests in the cache record it."""
    lock = json.loads(sh([sys.executable, "-c", LOCK_AS_JSON], repo))
    found = {}
    for out in OUTPUTS:
        md5 = lock[out]
        listing = repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
        found[out] = {item["relpath"]: item["md5"] for item in json.loads(listing.read_text())}
    return found


LOCK_AS_JSON = """
import json, yaml
lock = yaml.safe_load(open("dvc.lock"))["stages"]
print(json.dumps({o["path"]: o["md5"] for s in lock.values() for o in s.get("outs", []) if "md5" in o}))
"""


def cached(repo: Path) -> set[str]:
    """The md5 of every object in the project's DVC cache."""
    root = repo / ".dvc/cache/files/md5"
    return {p.parent.name + p.name for p in root.glob("*/*")} if root.is_dir() else set()


def version(repo: Path, teammate: Path, remote: Path, message: str) -> dict:
    """Reproduce, commit and push one version; the teammate pulls it. What each grew by, which
    output the new objects belong to, and how many of the previous version's files changed."""
    before = {"cache": folder_bytes(repo / ".dvc/cache"), "remote": folder_bytes(remote)}
    before["teammate"] = folder_bytes(teammate / ".dvc/cache") if teammate.exists() else 0
    files_before, objects_before = output_files(repo) if (repo / "dvc.lock").is_file() else {}, cached(repo)
    sh(["dvc", "repro", "augment"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", message], repo)
    sh(["dvc", "push"], repo)
    if teammate.exists():
        sh(["git", "pull", "-q"], teammate)
    else:
        sh(["git", "clone", "-q", str(repo), str(teammate)], repo.parent)
    sh(["dvc", "pull", *OUTPUTS], teammate)
    files = output_files(repo)
    grown = {
        "cache": folder_bytes(repo / ".dvc/cache") - before["cache"],
        "remote": folder_bytes(remote) - before["remote"],
        "teammate": folder_bytes(teammate / ".dvc/cache") - before["teammate"],
    }
    per_output = {
        out: sum(
            (repo / out / rel).stat().st_size for rel, md5 in files[out].items() if md5 not in objects_before
        )
        for out in OUTPUTS
    }
    previous = {(out, rel): md5 for out, found in files_before.items() for rel, md5 in found.items()}
    rewritten = sum(
        previous.get((out, rel), md5) != md5 for out in OUTPUTS for rel, md5 in files[out].items()
    )
    return {
        "data_bytes": sum(folder_bytes(repo / out) for out in OUTPUTS),
        "grown": grown,
        "per_output": per_output,
        "rewritten": rewritten,
        "files": sum(len(found) for found in files.values()),
    }


def run(args) -> dict[str, dict]:
    with tempfile.TemporaryDirectory(prefix="visionops-versions-") as tmp:
        work = Path(tmp)
        images, held = work / "images", work / "held"
        write_images(images, args.cifar.resolve(), args.per_class)
        hold_back(images, held, args.held)
        repo, remote, teammate = project(work / "project", images), work / "remote", work / "teammate"
        sh(["dvc", "remote", "add", "-d", "local", str(remote)], repo)
        sh(["git", "commit", "-qam", "remote"], repo)
        results = {"first version": version(repo, teammate, remote, "first")}
        steps = changes(images, held, args.held)
        removed = work / "removed"
        for name, moves in (
            ("+1 %", steps["add"][0]),
            ("-1 %", _first_of_each_class(images, removed, args.held)),  # images of the first version
            ("relabel 1 %", steps["relabel"][0]),
        ):
            move(moves)
            results[name] = version(repo, teammate, remote, name)
            print(name, json.dumps(results[name]), flush=True)
        if args.compact:
            results |= compaction(repo, teammate, remote, images, work)
    return results


def _first_of_each_class(images: Path, away: Path, count: int) -> list[tuple[Path, Path]]:
    """Moves that take the first `count` train images of every class out of the folder."""
    return [
        (path, away / folder.name / path.name)
        for folder in sorted((images / "train").iterdir())
        for path in sorted(folder.glob("*.jpg"))[:count]
    ]


def compaction(repo: Path, teammate: Path, remote: Path, images: Path, work: Path) -> dict[str, dict]:
    """Remove 30 % of the train images, compact, and compare with a scratch build of the rest."""
    train = sorted((images / "train").rglob("*.jpg"))
    for i, path in enumerate(train):
        if i % 10 in (0, 3, 6):  # 30 %, spread over every class and shard
            path.unlink()
    results = {"-30 %": version(repo, teammate, remote, "-30 %")}
    sh([sys.executable, "-m", "visionops", "compact"], repo)
    results["compacted"] = version(repo, teammate, remote, "compacted")
    scratch = committed_copy(work / "scratch", json.loads(sh([sys.executable, "-c", PARAMS_AS_JSON], repo)))
    sh(["dvc", "repro", "augment"], scratch)
    results["scratch build of the rest"] = {"data_bytes": sum(folder_bytes(scratch / out) for out in OUTPUTS)}
    return results


PARAMS_AS_JSON = "import json, yaml; print(json.dumps(yaml.safe_load(open('params.yaml'))))"


def table(results: dict[str, dict]) -> str:
    lines = [
        "| version | data stages' outputs (MB) | DVC cache grew | remote grew (push) | teammate pulled "
        "| of which listing / raw / validated / prepared | files rewritten |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for name, result in results.items():
        total = result["data_bytes"]
        if "grown" not in result:
            lines.append(f"| {name} | {total / 1e6:.1f} | | | | | |")
            continue
        cells = [
            f"{result['grown'][k] / 1e6:.1f} MB ({result['grown'][k] / total:.1%})"
            for k in ("cache", "remote", "teammate")
        ]
        split = " / ".join(f"{result['per_output'][out] / 1e6:.2f}" for out in OUTPUTS)
        changed = f"{result['rewritten']} of {result['files']}"
        lines.append(f"| {name} | {total / 1e6:.1f} | {' | '.join(cells)} | {split} MB | {changed} |")
    return "\n".join(lines)


def main() -> None:
    parser = growth_parser(__doc__)
    parser.add_argument("--per-class", type=int, default=5000, help="train images per class (test: 1/5)")
    parser.add_argument("--held", type=int, default=60, help="train images per class added/relabelled")
    parser.add_argument("--compact", action="store_true", help="also remove 30 %% and compact")
    args = parser.parse_args()
    results = run(args)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
