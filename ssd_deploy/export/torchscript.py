"""TorchScript files: a traced network inside scripted decoding and NMS.

The network (convolutions only, no control flow) is traced; decoding and NMS are scripted, so the
number of detections stays data-dependent and the batch size free. NMS inside is the plain-tensor
:func:`ssd_deploy.postprocess.tensor_nms.batched_nms_tensor`, so the file loads in LibTorch (C++) without
torchvision's operator library. The metadata is the extra file ``metadata.json``
(``torch::jit::load(path, device, extra_files)`` in C++). Python loads it with
:func:`ssd_deploy.runtimes.torchscript.load_module`.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import torch
from torch import Tensor, nn

from ..devices import ieee_float32
from ..errors import ExportError
from .graph import GraphSpec

METADATA_FILE = "metadata.json"


def write(network: nn.Module, spec: GraphSpec, example: Tensor, path: Path, metadata: dict[str, str]) -> None:
    """Trace ``network`` on ``example`` (Tensor[N, 3, H, W]), script the graph, save to ``path``."""
    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export; it is still what LibTorch loads.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with torch.no_grad(), ieee_float32():  # else every convolution is recorded as TF32 on CUDA
            traced = torch.jit.trace(network.eval(), example, check_trace=False)
        scripted = torch.jit.script(spec.build(traced, nms_backend="tensor"))
        scripted.save(str(path), _extra_files={METADATA_FILE: json.dumps(metadata)})


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata map, read from the archive without loading the model."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if name.endswith(f"/extra/{METADATA_FILE}")]
            if not names:
                raise ExportError(path, "TorchScript file without ssd-deploy metadata. Note: export it with ssd-export")
            return json.loads(archive.read(names[0]))
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ExportError(path, f"not a readable TorchScript file ({error})") from None
