"""torchvision's ResNet-50 with the shared model interface: the ImageNet stem for large images, and the
CIFAR stem (3x3 stride-1 first convolution, no max-pool) that SimCLR's CIFAR-10 ResNet-50 uses, so 32 px
images keep a 4x4 map at the last stage instead of 1x1."""
from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models.resnet import Bottleneck, ResNet


class ResNet50(ResNet):
    def __init__(self, num_classes: int, width: float = 1.0, image_shape=(3, 224, 224)):
        # torchvision's width knob is the bottleneck width per group (64 = standard ResNet-50).
        super().__init__(Bottleneck, [3, 4, 6, 3], num_classes=num_classes,
                         width_per_group=max(1, int(round(64 * width))))
        if image_shape[0] != 3:
            self.conv1 = nn.Conv2d(image_shape[0], 64, 7, 2, 3, bias=False)
        self.head = self.fc
        self.feature_dim = self.fc.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def resnet50(num_classes: int, width: float = 1.0, image_shape=(3, 224, 224)) -> ResNet50:
    return ResNet50(num_classes, width, image_shape)


def resnet50_cifar(num_classes: int, width: float = 1.0, image_shape=(3, 32, 32)) -> ResNet50:
    model = ResNet50(num_classes, width, image_shape)
    model.conv1 = nn.Conv2d(image_shape[0], 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model
