"""SSD300's ResNet-50 backbone, as NVIDIA's SSD300 v1.1 (DeepLearningExamples) and uvipen/SSD-pytorch.

torchvision's ResNet-50 up to layer3, with the first block of layer3 at stride 1 so that its
output is 38x38 for a 300x300 input, followed by five additional blocks
(1x1 conv -> BN -> ReLU -> 3x3 conv -> BN -> ReLU; stride 2 for the first three).
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.models import resnet50

from .backbone_weights import check_backbone_load


def _additional_block(in_channels: int, mid_channels: int, out_channels: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False),
        nn.BatchNorm2d(mid_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid_channels, out_channels, kernel_size=3, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ResNet50Backbone(nn.Module):
    """Six feature maps of 1024, 512, 512, 256, 256, 256 channels (38, 19, 10, 5, 3, 1 at 300x300)."""

    out_channels = (1024, 512, 512, 256, 256, 256)

    def __init__(self) -> None:
        super().__init__()
        resnet = resnet50(weights=None)
        # Same attribute names as torchvision's ResNet, so ImageNet weights load by name.
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3 = resnet.layer1, resnet.layer2, resnet.layer3
        first = self.layer3[0]
        first.conv1.stride = first.conv2.stride = first.downsample[0].stride = (1, 1)
        self.additional = nn.ModuleList(
            [
                _additional_block(1024, 256, 512, stride=2, padding=1),
                _additional_block(512, 256, 512, stride=2, padding=1),
                _additional_block(512, 128, 256, stride=2, padding=1),
                _additional_block(256, 128, 256, stride=1, padding=0),
                _additional_block(256, 128, 256, stride=1, padding=0),
            ]
        )
        for module in self.additional.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        features = [x]
        for block in self.additional:
            x = block(x)
            features.append(x)
        return features

    def load_imagenet_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Load torchvision ``resnet50`` ImageNet weights (layer4 and fc are ignored)."""
        kept = {k: v for k, v in state_dict.items() if not k.startswith(("layer4.", "fc."))}
        missing, unexpected = self.load_state_dict(kept, strict=False)
        check_backbone_load(missing, unexpected, expected_missing_prefixes=("additional.",))
