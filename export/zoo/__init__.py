"""Models to compile, for exactness tests and speed benchmarks (never shipped weights).

- ``networks``: reference architectures with random weights (ResNet-18, ResNet-20, VGG-16-bn,
  MobileNetV2, a U-Net), built as exporters write them; :data:`NETWORKS` registers them by name.
- ``keras_cifar``: a real trained model, the Keras CIFAR-10 CNN that the ``cifar-10-model`` package
  ships, converted to ONNX at run time.
- ``detectors``: an SSD-style anchor head (BlazeFace's layout, random weights) and its anchors.
- ``yolo``: YOLOv8n exported by ultralytics itself from its architecture config (random weights, in a
  child process; ultralytics and PyTorch are test extras).
"""

from export.zoo.detectors import ssd_anchors, ssd_head
from export.zoo.networks import (CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, NETWORKS, Net, mobilenet_v2,
                                 resnet18, resnet20, unet, vgg16_bn)

__all__ = ["CIFAR_MEAN", "CIFAR_STD", "IMAGENET_MEAN", "IMAGENET_STD", "NETWORKS", "Net", "mobilenet_v2", "resnet18",
           "resnet20", "ssd_anchors", "ssd_head", "unet", "vgg16_bn"]
