"""Regenerate the README's latency tables and check the speed targets, for the models users deploy
(COCO-sized, 91 classes) and the demo's kind (a few classes, trained here).

    python benchmarks/latency.py                      # COCO-sized models + shapes-trained SSDLite
    python benchmarks/latency.py --ssdlite runs/ssdlite/best.pt --vgg runs/vgg/best.pt
    python benchmarks/latency.py --ssdlite ~/.cache/torch/hub/checkpoints/ssdlite320_mobilenet_v3_large_coco-a79551df.pth

COCO-sized models are torchvision's two COCO architectures (SSDLite320-MobileNetV3, SSD300-VGG16)
with 91 classes and seeded, spread weights (:func:`ssd_deploy.models.informative.informative_init`):
nothing can be downloaded here, and spread weights give distinct, realistic scores, so NMS gets
the candidates a COCO model gives it (at score 0.01: every class's 400). ``--ssdlite``/``--vgg``
add trained checkpoints (ssd-train's, or torchvision's COCO state dicts); without them a
shapes-trained SSDLite (``--train-images``, one epoch, reused from ``OUT/models``) stands for the
demo's model. Runs ``ssd-bench latency`` (every runtime usable here, batch 1 and 8) into ``--out``
at the paper's evaluation threshold (0.01), and again for the COCO-sized models at a deployment
threshold (0.3) into ``OUT/score-0.3``, then checks, on one quiet machine and in one run:

- COCO SSDLite320, batch 1: the fastest runtime at least 6x torchvision's eager pipeline end to
  end, ONNX Runtime at least 4x;
- decode + NMS at most 15 % of end to end on every runtime and batch size at score 0.01, at most
  5 % at score 0.3; on COCO SSD300-VGG16 (network-bound) at most 5 %.

Writes ``<out>/latency.md/.csv/.json/.png``, ``<out>/score-0.3/...`` and ``<out>/targets.json``;
exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from ssd_deploy.bench import LatencyConfig, LatencyReport, run_latency
from ssd_deploy.calibration import Calibration
from ssd_deploy.checkpoint import load_checkpoint
from ssd_deploy.files import atomic_write
from ssd_deploy.postprocess import PostprocessConfig

ARCHS = {"ssdlite": "ssdlite_mobilenet_v3", "vgg": "ssd300_vgg16"}
COCO_MODELS = {"coco-ssdlite": ("ssdlite_mobilenet_v3", (320, 320)), "coco-vgg": ("ssd300_vgg16", (300, 300))}
COCO_CLASSES = 91
POST_SHARE = {0.01: 0.15, 0.3: 0.05}  # decode + NMS share of end to end, by score threshold
VGG_POST_SHARE = 0.05
DEPLOYMENT_SCORE = 0.3


def coco_sized(key: str, out: Path) -> Path:
    """``COCO_MODELS[key]`` with 91 classes and spread seeded weights, written once to ``out/models``."""
    from ssd_deploy.checkpoint import save_checkpoint
    from ssd_deploy.models import create_model
    from ssd_deploy.models.informative import informative_init

    arch, size = COCO_MODELS[key]
    path = out / "models" / f"{arch}-coco{COCO_CLASSES}-spread.pt"  # the report names models by file name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        names = ["background", *(f"class_{i}" for i in range(1, COCO_CLASSES))]
        save_checkpoint(path, informative_init(create_model(arch, num_classes=COCO_CLASSES, input_size=size)), names)
    return path


def shapes_trained(key: str, out: Path, train_images: int) -> Path:
    """``ARCHS[key]`` at its native input size, trained one epoch on generated shapes (the demo's
    optimiser settings), or the checkpoint of an earlier run in ``out/models/KEY``."""
    from ssd_deploy.demo import DEMO_TRAINING
    from ssd_deploy.training import TrainConfig
    from ssd_deploy.training.trainer import train

    output = out / "models" / key
    named = out / "models" / f"{ARCHS[key]}-shapes.pt"  # the report names models by file name
    if named.is_file():
        print(f"{key}: reusing {named} (delete it to train again)")
        return named
    recipe = {**DEMO_TRAINING, "arch": ARCHS[key], "input_size": None, "eval_every": 1}
    config = TrainConfig(**recipe, data="shapes", shapes_train=train_images, shapes_val=100, epochs=1, output=str(output))
    result = train(config)
    if result.best_checkpoint is None:
        raise SystemExit(f"{output}: training wrote no best.pt")
    print(f"{key}: trained {train_images} images in {sum(r.get('epoch_s', 0.0) for r in result.history):.0f} s, mAP@0.5 {result.best_value:.3f}")
    shutil.copyfile(result.best_checkpoint, named)
    return named


def _best(report: LatencyReport, model: str, runtime: str | None = None, precisions: tuple[str, ...] | None = None):
    """The batch-1 row of ``model`` with the highest speed-up (optionally one runtime / precisions)."""
    rows = [r for r in report.rows if r.model == model and r.batch == 1 and not r.baseline and r.speedup is not None
            and (runtime is None or r.runtime == runtime) and (precisions is None or r.precision in precisions)]
    return max(rows, key=lambda r: r.speedup, default=None)


def _speedup_check(report: LatencyReport, model: str, target: float, title: str, **where) -> dict:
    row = _best(report, model, **where)
    value = None if row is None else row.speedup
    return {"target": f"{title} >= {target:g}x", "measured": value, "by": "no row" if row is None else row.label,
            "passed": None if value is None else value >= target}


def _post_checks(report: LatencyReport, share: float, models: set[str] | None = None, note: str = "") -> list[dict]:
    return [{"target": f"{row.model} {row.label} batch {row.batch}{note}: decode + NMS <= {share:.0%}",
             "measured": row.post_share, "by": row.split, "passed": row.post_share <= share}
            for row in report.rows if not row.baseline and (models is None or row.model in models)]


def targets(report: LatencyReport, deployment: LatencyReport | None, models: dict[str, str]) -> list[dict]:
    """One record per target: what was measured and whether it passed (None: not measurable)."""
    checks = []
    lite, vgg = models.get("coco-ssdlite"), models.get("coco-vgg")
    if lite:
        checks.append(_speedup_check(report, lite, 6.0, "COCO SSDLite320 batch-1 speed-up over torchvision eager"))
        checks.append(_speedup_check(report, lite, 4.0, "COCO SSDLite320 batch-1 ONNX Runtime speed-up", runtime="onnxruntime"))
    others = {name for key, name in models.items() if key != "coco-vgg"}
    checks += _post_checks(report, POST_SHARE[0.01], others, " (score 0.01)")
    if vgg:
        checks += _post_checks(report, VGG_POST_SHARE, {vgg}, " (score 0.01)")
    if deployment is not None:
        checks += _post_checks(deployment, POST_SHARE[DEPLOYMENT_SCORE], None, f" (score {DEPLOYMENT_SCORE:g})")
    return checks


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--ssdlite", type=Path, help="SSDLite-MobileNetV3 320 checkpoint (trained); default: train one on shapes here")
    parser.add_argument("--vgg", type=Path, help="SSD300-VGG16 checkpoint (trained)")
    parser.add_argument("--no-coco", action="store_true", help="leave out the COCO-sized (91-class, spread weights) models")
    parser.add_argument("--train-images", type=int, default=800, help="generated images to train a missing checkpoint on (one epoch)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-latency"), help="output folder (exports cached in OUT/cache)")
    parser.add_argument("--runtimes", nargs="+", help="runtimes to measure (default: every one usable here)")
    parser.add_argument("--precisions", nargs="+", help="precisions to measure (default: every one a runtime supports here)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8], help="images per detect() call")
    parser.add_argument("--iterations", type=int, default=50, help="timed calls per measurement")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls first")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="stop a warm-up, and a measurement, after this long")
    parser.add_argument("--threads", type=int, help="CPU threads for every runtime; default: one per physical core")
    parser.add_argument("--images", type=Path, help="images to detect on; default: generated scenes")
    parser.add_argument("--calib", type=Path, help="INT8 calibration images (the training set's images)")
    parser.add_argument("--score", type=float, default=PostprocessConfig().score_threshold,
                        help="score threshold inside the graphs (default: the paper's evaluation setting)")
    parser.add_argument("--pre-nms-topk", type=int, default=PostprocessConfig().pre_nms_topk,
                        help="candidates over all classes entering NMS per image (0: all, exact)")
    parser.add_argument("--no-deployment-run", action="store_true", help=f"skip the second run at score {DEPLOYMENT_SCORE}")
    parser.add_argument("--no-verify", action="store_true", help="do not check newly exported files against PyTorch")
    return parser.parse_args()


def _models(args: argparse.Namespace) -> dict[str, Path]:
    given = {key: path for key, path in (("ssdlite", args.ssdlite), ("vgg", args.vgg)) if path is not None}
    for key, path in given.items():
        arch = load_checkpoint(path)[0].config.arch
        if arch != ARCHS[key]:
            raise SystemExit(f"--{key} {path}: a {arch} checkpoint, expected {ARCHS[key]}")
    if not given:
        given = {"ssdlite": shapes_trained("ssdlite", args.out, args.train_images)}
    if not args.no_coco:
        given.update({key: coco_sized(key, args.out) for key in COCO_MODELS})
    return given


def _run(paths: list[Path], args: argparse.Namespace, score: float, out: Path) -> LatencyReport:
    config = LatencyConfig(runtimes=tuple(args.runtimes) if args.runtimes else None, batch_sizes=tuple(args.batch_sizes),
                           precisions=tuple(args.precisions) if args.precisions else None,
                           warmup=args.warmup, iterations=args.iterations, threads=args.threads, images=args.images,
                           calibration=Calibration(args.calib), max_seconds=args.max_seconds, verify=not args.no_verify, export_jobs=2,
                           postprocess=PostprocessConfig(score_threshold=score, pre_nms_topk=args.pre_nms_topk))
    report = run_latency(paths, config, out, on_progress=lambda partial: partial.write(out, plot=False))
    report.write(out)
    print(report.markdown())
    return report


def main() -> int:
    args = _arguments()
    models = _models(args)
    report = _run(list(models.values()), args, args.score, args.out)
    coco = [models[key] for key in COCO_MODELS if key in models]
    deployment = None
    if coco and not args.no_deployment_run and args.score < DEPLOYMENT_SCORE:
        deployment = _run(coco, args, DEPLOYMENT_SCORE, args.out / f"score-{DEPLOYMENT_SCORE:g}")
    checks = targets(report, deployment, {key: path.name for key, path in models.items()})
    for check in checks:
        state = {True: "pass", False: "MISS", None: "n/a"}[check["passed"]]
        measured = "-" if check["measured"] is None else f"{check['measured']:.3g}"
        print(f"[{state}] {check['target']}: {measured} ({check['by']})")
    atomic_write(args.out / "targets.json", lambda tmp: tmp.write_text(json.dumps(checks, indent=2)))
    missed = [c for c in checks if c["passed"] is not True]
    return 1 if missed or report.failed or (deployment is not None and deployment.failed) else 0


if __name__ == "__main__":
    sys.exit(main())
