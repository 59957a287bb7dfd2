"""What an exported file says about itself, so a program needs nothing but the file.

Every format stores the same flat ``{key: string}`` map: ONNX in ``metadata_props``, TorchScript
as the extra file ``metadata.json``, AOTInductor packages in their compiled-in metadata. Values
are JSON (numbers, lists, booleans, quoted strings), so C++ readers parse them with any JSON
reader and a missing key is distinguishable from an empty one.

The contract the metadata describes (``contract_version`` 1):

- input ``images``: float32 ``[N, 3, H, W]``, RGB, values in [0, 1]; normalisation by
  ``mean``/``std`` happens inside the graph. ``resize`` says how a host resizes an image to
  ``[H, W]`` (``opencv`` or ``torchvision``, see :mod:`ssd_deploy.pipeline`; ``opencv`` when absent).
- with ``nms``: ``num_detections [N] int32``, ``boxes [N, K, 4] float32`` xyxy in [0, 1],
  ``scores [N, K] float32``, ``labels [N, K] int32`` (indices into ``class_names``; rows past
  ``num_detections`` are zero). TensorRT's EfficientNMS layout.
- without: ``boxes [N, P, 4]`` decoded xyxy in [0, 1] and ``scores [N, P, C]`` softmaxed
  (column 0 is background).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ExportError
from ..postprocess.config import PostprocessConfig
from ..resizing import DEFAULT_RESIZE, RESIZE_METHODS
from ..version import __version__

if TYPE_CHECKING:  # only named in a signature: the models need not be imported to read metadata
    from ..models import SSD

CONTRACT_VERSION = 1
INPUT_NAME = "images"
NMS_OUTPUTS = ("num_detections", "boxes", "scores", "labels")
DECODED_OUTPUTS = ("boxes", "scores")
NETWORK_OUTPUTS = ("loc", "logits")  # a network-only file (benchmarks): the head's raw outputs
PRECISIONS = ("fp32", "fp16", "bf16", "int8")  # the network's arithmetic; I/O stays float32


@dataclass(frozen=True)
class ExportMetadata:
    """Self-description of an exported file (see the module docstring for the contract).

    Attributes:
        format: ``torchscript``, ``onnx`` or ``pt2``.
        arch: architecture name. model_config: :meth:`ModelConfig.to_dict` of the network.
        class_names: names by label index, background at 0.
        input_size: (height, width) in pixels. mean, std: RGB normalisation done in the graph.
        nms: outputs are the padded detections (True) or decoded boxes and scores (False).
        score_threshold, iou_threshold, max_detections, topk_candidates, pre_nms_topk: NMS
            settings (``max_detections`` is K; see :class:`~ssd_deploy.postprocess.PostprocessConfig`).
            Files written before ``pre_nms_topk`` existed read as 0 (no pre-selection).
        batch: the fixed batch size, or None when the batch dimension is dynamic.
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8`` (the network's arithmetic; inputs and outputs are float32).
        resize: the host's resize method for this model (:data:`ssd_deploy.pipeline.RESIZE_METHODS`).
        network_only: the network alone, no decoding, no NMS (the benchmarks' companion files):
            outputs ``loc`` [N, P, 4] and ``logits`` [N, P, C], not the decoded contract.
        simplifier: the tool and version that simplified the ONNX graph (``onnxslim 0.1.98``,
            ``ssd-export --simplify``); empty when the graph is as the exporter wrote it.
    """

    format: str
    arch: str
    class_names: tuple[str, ...]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    nms: bool
    score_threshold: float
    iou_threshold: float
    max_detections: int
    topk_candidates: int
    batch: int | None
    precision: str
    model_config: dict[str, Any] = field(default_factory=dict, compare=False)
    resize: str = DEFAULT_RESIZE
    pre_nms_topk: int = 0
    contract_version: int = CONTRACT_VERSION
    ssd_deploy_version: str = __version__
    network_only: bool = False
    simplifier: str = ""

    @property
    def input_name(self) -> str:
        return INPUT_NAME

    @property
    def output_names(self) -> tuple[str, ...]:
        if self.network_only:
            return NETWORK_OUTPUTS
        return NMS_OUTPUTS if self.nms else DECODED_OUTPUTS

    @property
    def postprocess(self) -> PostprocessConfig:
        """The NMS settings the graph (or, without NMS in it, the host) applies."""
        return PostprocessConfig(self.score_threshold, self.iou_threshold, self.max_detections, self.topk_candidates, self.pre_nms_topk)

    @property
    def num_classes(self) -> int:
        """Classes including background."""
        return len(self.class_names)

    def to_strings(self) -> dict[str, str]:
        """The flat ``{key: JSON string}`` map stored in the file."""
        values = {
            "contract_version": self.contract_version,
            "ssd_deploy_version": self.ssd_deploy_version,
            "format": self.format,
            "arch": self.arch,
            "class_names": list(self.class_names),
            "input_name": self.input_name,
            "input_size": list(self.input_size),
            "input_layout": "NCHW float32 RGB in [0, 1]",
            "resize": self.resize,
            "mean": list(self.mean),
            "std": list(self.std),
            "nms": self.nms,
            "output_names": list(self.output_names),
            "score_threshold": self.score_threshold,
            "iou_threshold": self.iou_threshold,
            "max_detections": self.max_detections,
            "topk_candidates": self.topk_candidates,
            "pre_nms_topk": self.pre_nms_topk,
            "batch": self.batch if self.batch is not None else "dynamic",
            "precision": self.precision,
            "model_config": self.model_config,
        }
        if self.network_only:  # only companions carry the key: other files stay as they were
            values["network_only"] = True
        if self.simplifier:  # likewise only simplified files carry it
            values["simplifier"] = self.simplifier
        # allow_nan=False: NaN and Infinity are not JSON, and strict readers (nlohmann::json) refuse them.
        return {key: json.dumps(value, allow_nan=False) for key, value in values.items()}

    @classmethod
    def from_strings(cls, strings: dict[str, str], source: object) -> ExportMetadata:
        """Parse what :meth:`to_strings` wrote; ``source`` (a path) names the file in errors.

        Raises:
            ExportError: keys missing (not an ssd-deploy export), malformed values, or a newer
                contract than this version understands.
        """
        if "contract_version" not in strings:
            raise ExportError(source, "no ssd-deploy metadata in this file. Note: export it with ssd-export")
        try:
            values = {key: json.loads(value) for key, value in strings.items() if not key.startswith("AOTI_")}
            version = int(values["contract_version"])
            if version > CONTRACT_VERSION:
                raise ExportError(
                    source, f"exported with contract version {version}; this ssd-deploy reads up to {CONTRACT_VERSION}"
                )
            batch = values["batch"]
            resize = str(values.get("resize", DEFAULT_RESIZE))
            if resize not in RESIZE_METHODS:
                raise ExportError(source, f"resize method {resize!r} is unknown to this ssd-deploy. Note: it knows {', '.join(RESIZE_METHODS)}")
            return cls(
                format=str(values["format"]),
                arch=str(values["arch"]),
                class_names=tuple(str(name) for name in values["class_names"]),
                input_size=(int(values["input_size"][0]), int(values["input_size"][1])),
                mean=tuple(float(v) for v in values["mean"]),
                std=tuple(float(v) for v in values["std"]),
                nms=bool(values["nms"]),
                score_threshold=float(values["score_threshold"]),
                iou_threshold=float(values["iou_threshold"]),
                max_detections=int(values["max_detections"]),
                topk_candidates=int(values["topk_candidates"]),
                batch=None if batch == "dynamic" else int(batch),
                precision=str(values["precision"]),
                model_config=dict(values.get("model_config") or {}),
                resize=resize,
                pre_nms_topk=int(values.get("pre_nms_topk", 0)),
                contract_version=version,
                ssd_deploy_version=str(values.get("ssd_deploy_version", "unknown")),
                network_only=bool(values.get("network_only", False)),
                simplifier=str(values.get("simplifier", "")),
            )
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise ExportError(source, f"malformed ssd-deploy metadata ({error!r})") from None


def describe_model(
    model: SSD,
    class_names: list[str],
    postprocess: PostprocessConfig = PostprocessConfig(),
    nms: bool = True,
    batch: int | None = None,
    precision: str = "fp32",
    format: str = "pytorch",
) -> ExportMetadata:
    """The :class:`ExportMetadata` an export of ``model`` with these settings carries.

    Runtimes that run a checkpoint directly use it too, so every runtime is described alike.
    """
    config = model.config
    return ExportMetadata(
        format=format,
        arch=config.arch,
        class_names=tuple(class_names),
        input_size=config.input_size,
        mean=config.mean,
        std=config.std,
        nms=nms,
        score_threshold=postprocess.score_threshold,
        iou_threshold=postprocess.iou_threshold,
        max_detections=postprocess.max_detections,
        topk_candidates=postprocess.topk_candidates,
        pre_nms_topk=postprocess.pre_nms_topk,
        batch=batch,
        precision=precision,
        model_config=config.to_dict(),
        resize=config.resize,
    )
