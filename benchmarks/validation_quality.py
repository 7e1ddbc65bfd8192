"""How often the quality checks fire on a real collection, and whether planted flaws are
caught: the share of images each check flags (target <= 2 %), then the same collection with
a planted set added (Gaussian blur of radius BLUR x the short side, nearly black, constant)
and the share of those caught. Label conflicts found are counted too. Nothing is asserted.
    python benchmarks/validation_quality.py --folder ../shared/datasets/hymenoptera
    python benchmarks/validation_quality.py --cifar ../shared/datasets/cifar10_jpg.tar.gz
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import write_images

import visionops  # noqa: F401  (process hygiene)

CHECKS = ("too_dark_or_bright", "nearly_blank", "very_blurry")
PLANT_EVERY = 40  # one photo in this many gets its three flawed copies


def plant(root: Path, blur: float) -> dict[str, str]:
    """Write flawed copies beside some images under root; return path -> flaw."""
    import numpy as np
    from PIL import Image, ImageFilter

    planted = {}
    photos = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    for photo in photos[::PLANT_EVERY]:
        img = Image.open(photo).convert("RGB")
        flaws = {
            "very_blurry": img.filter(ImageFilter.GaussianBlur(max(1.0, blur * min(img.size)))),
            "too_dark_or_bright": Image.fromarray((np.asarray(img) * 0.03).astype(np.uint8)),
            "nearly_blank": Image.new("RGB", img.size, (90, 140, 60)),
        }
        for flaw, image in flaws.items():
            target = photo.with_name(f"{photo.stem}_planted_{flaw}.png")
            image.save(target)
            planted[target.relative_to(root).as_posix()] = flaw
    return planted


def main() -> None:
    import shutil

    from visionops.config import ValidateParams
    from visionops.data.shards import pack_tree
    from visionops.validation.manifest import build_manifest
    from visionops.validation.run import flag_all

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", type=Path, help="a class-folder tree: <split>/<class>/<image>")
    parser.add_argument("--cifar", type=Path, help="the CIFAR-10 JPEG archive")
    parser.add_argument("--per-class", type=int, default=6000, help="CIFAR images per class (train)")
    parser.add_argument("--blur", type=float, default=0.02, help="planted blur radius / short side")
    args = parser.parse_args()
    cfg = ValidateParams()
    with tempfile.TemporaryDirectory(prefix="visionops-quality-") as tmp:
        root = Path(tmp) / "images"
        if args.folder:
            shutil.copytree(args.folder, root)
        else:
            write_images(root, args.cifar, args.per_class)
        start = time.perf_counter()
        clean = flag_all(build_manifest(pack_tree(root, Path(tmp) / "raw"), progress=False)[0], cfg)
        print(f"{len(clean)} images, manifest + flags in {time.perf_counter() - start:.1f} s")
        for check in CHECKS:
            print(f"  {check:20s} flags {100 * clean[check].mean():5.2f} % ({int(clean[check].sum())})")
        print(f"  label conflicts      {int(clean['label_conflict'].sum())}")
        planted = plant(root, args.blur)
        repacked = pack_tree(root, Path(tmp) / "raw-planted")
        flagged = flag_all(build_manifest(repacked, progress=False)[0], cfg).set_index("path")
        print(f"planted {len(planted)} flawed copies (blur radius {args.blur} x short side):")
        for flaw in CHECKS:
            paths = [p for p, f in planted.items() if f == flaw]
            caught = sum(bool(flagged.loc[p, flaw]) for p in paths)
            print(f"  {flaw:20s} caught {caught}/{len(paths)}")


if __name__ == "__main__":
    main()
