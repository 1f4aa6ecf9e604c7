#!/usr/bin/env python3
"""Writes the checkpoint fixtures of tests/test_torch_file.cpp and tests/test_pretrained.cpp into
tests/reference/pretrained/: small PyTorch files of the kinds users bring (torch.save in both
formats, nested and wrapped checkpoints, broken and hostile files) and what PyTorch computes
with them. Networks are width-reduced (1/16 of the channels) but keep torchvision's and ESANet's
parameter names and layouts, so the C++ side maps them exactly as it maps the real ones.

  resnet18_tv.pth            torchvision-layout ResNet-18 state dict, torch.save (zip)
  resnet18_tv_legacy.pth     the same, _use_new_zipfile_serialization=False
  resnet18_tv_lightning.ckpt a Lightning-style checkpoint: state_dict under "model.", optimizer, hparams
  resnet18_tv_dataparallel.pth  the state dict with DataParallel's "module." prefix
  resnet34_tv.pth, resnet50_tv.pth  the other torchvision depths (zip, pickle protocol 4, width 1/32)
  r18_nbt1d_imagenet.pth     ESANet's ImageNet encoder checkpoint layout: {"epoch", "state_dict":
                             {"encoder.*", "fc.*"}, "optimizer"}, legacy format as the released one
  esanet_r18_nbt1d_40.pth    a whole ESANet (40 classes, width 1/32) as {"state_dict": ..., "epoch": ...}
  dtypes.pth                 every storage type, a transposed view, a storage offset, a parameter,
                             a tensor with an attribute, pickle protocol 4
  forbidden_global.pth       a zip whose data.pkl calls GLOBAL os system (must be refused)
  truncated.pth              the first half of resnet18_tv.pth
  reference.safetensors      input and PyTorch's encoder outputs (stem, layer1..4) of resnet18_tv for
                             the RGB encoder and for the depth encoder (first conv summed over RGB)

Run once where PyTorch is installed (CPU is fine); nothing in the build or CI needs PyTorch:
    python3 tests/reference/make_pretrained_fixtures.py
"""
import collections
import io
import json
import os
import struct
import sys
import zipfile

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_esanet_reference as esa  # noqa: E402  (ESANet with mtl's names)

WIDTH = 0.0625
OUT = os.path.join(HERE, "pretrained")


def ch(c, width=WIDTH):
    return max(1, int(round(c * width)))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        out = planes
        self.downsample = (nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                           if stride != 1 or cin != out else None)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                           if stride != 1 or cin != out else None)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """torchvision.models.resnet.ResNet's module tree at a fraction of its width."""

    def __init__(self, block, layers, in_ch=3, classes=10, width=WIDTH):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, ch(64, width), 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(ch(64, width))
        c = ch(64, width)
        for i, n in enumerate(layers):
            planes = ch(64 << i, width)
            blocks = []
            for b in range(n):
                blocks.append(block(c, planes, 2 if i > 0 and b == 0 else 1))
                c = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(c, classes)

    def stages(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        out = [x]
        x = F.max_pool2d(x, 3, 2, 1)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            out.append(x)
        return out


def randomise(model, seed):
    """Non-trivial norm parameters and statistics, so that a swapped or skipped one shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.4 - 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(7)
    return model


def save_safetensors(path, tensors, metadata):
    """The safetensors layout by hand (an 8-byte header length, a JSON header, the raw data)."""
    names = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.int32: "I32"}
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        b = t.numpy().tobytes()
        header[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    os.makedirs(OUT, exist_ok=True)
    path = lambda name: os.path.join(OUT, name)  # noqa: E731
    torch.manual_seed(0)

    # torchvision ResNet-18 in every wrapping users meet.
    r18 = randomise(ResNet(BasicBlock, [2, 2, 2, 2]), 1).eval()
    sd = collections.OrderedDict((k, v.clone()) for k, v in r18.state_dict().items())  # not the live parameters
    torch.save(sd, path("resnet18_tv.pth"))
    torch.save(sd, path("resnet18_tv_legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save(collections.OrderedDict(("module." + k, v) for k, v in sd.items()), path("resnet18_tv_dataparallel.pth"))
    opt = torch.optim.Adam(r18.fc.parameters(), lr=0.01)
    r18.fc(torch.randn(2, ch(512))).sum().backward()
    opt.step()
    torch.save({"epoch": 2, "global_step": 20, "pytorch-lightning_version": "2.1.3",
                "state_dict": collections.OrderedDict(("model." + k, v) for k, v in sd.items()),
                "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 2}}}},
                "callbacks": {"ModelCheckpoint{'monitor': 'val_loss'}": {"best_model_score": torch.tensor(0.5),
                                                                         "best_model_path": "/runs/x.ckpt"}},
                "optimizer_states": [opt.state_dict()],
                "lr_schedulers": [{"last_epoch": 2, "_step_count": 3, "base_lrs": [0.01]}],
                "hparams_name": "kwargs", "hyper_parameters": {"lr": 0.01, "betas": (0.9, 0.999), "frozen": None}},
               path("resnet18_tv_lightning.ckpt"))
    # The deeper ones at half that width again: only their names and shapes are tested.
    torch.save(randomise(ResNet(BasicBlock, [3, 4, 6, 3], width=WIDTH / 2), 2).state_dict(), path("resnet34_tv.pth"),
               pickle_protocol=4)
    torch.save(randomise(ResNet(Bottleneck, [3, 4, 6, 3], width=WIDTH / 2), 3).state_dict(), path("resnet50_tv.pth"),
               pickle_protocol=4)

    # PyTorch's encoder outputs for the mapping test: RGB as is, depth with conv1 summed over RGB.
    g = torch.Generator().manual_seed(5)
    rgb, depth = torch.randn(1, 3, 64, 64, generator=g), torch.randn(1, 1, 64, 64, generator=g)
    d18 = ResNet(BasicBlock, [2, 2, 2, 2], in_ch=1).eval()
    dsd = dict(sd)
    dsd["conv1.weight"] = sd["conv1.weight"].sum(dim=1, keepdim=True)
    d18.load_state_dict(dsd)
    ref = {"input/rgb": rgb, "input/depth": depth}
    with torch.no_grad():
        for name, out in (("rgb", r18.stages(rgb)), ("depth", d18.stages(depth))):
            for i, t in enumerate(out):
                ref[f"{name}/{'stem' if i == 0 else 'layer%d' % i}"] = t
    save_safetensors(path("reference.safetensors"), ref, {"torch": torch.__version__, "width": str(WIDTH)})

    # ESANet's ImageNet encoder checkpoint: imagenet_pretraining.py's Classifier (encoder + fc),
    # saved with the optimizer; legacy format, as the 2020 release was.
    esa.CFG.update(encoder="resnet18", width=WIDTH, num_classes=40)
    classifier = nn.Module()
    classifier.encoder = randomise(esa.Encoder(3, "batchnorm"), 4)
    classifier.fc = nn.Linear(ch(512), 10)
    sgd = torch.optim.SGD(classifier.parameters(), lr=0.1, momentum=0.9)
    classifier.fc(torch.randn(2, ch(512))).sum().backward()
    sgd.step()
    torch.save({"epoch": 89, "state_dict": classifier.state_dict(), "optimizer": sgd.state_dict()},
               path("r18_nbt1d_imagenet.pth"), _use_new_zipfile_serialization=False)

    # A whole trained ESANet with 40 classes (NYUv2's count), as train.py saves it; half width again.
    esa.CFG.update(width=WIDTH / 2)
    model = randomise(esa.ESANet("batchnorm"), 6)
    torch.save({"epoch": 499, "state_dict": model.state_dict()}, path("esanet_r18_nbt1d_40.pth"))

    # Every storage type, views and wrappers.
    attr = torch.arange(3, dtype=torch.float32)
    attr.note = "a Python attribute"
    base = torch.arange(10, dtype=torch.float32)
    torch.save({"f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4,
                "f64": torch.arange(6, dtype=torch.float64).reshape(3, 2) / 8,
                "f16": torch.arange(6, dtype=torch.float16).reshape(2, 3) / 4 - 0.5,
                "bf16": torch.arange(4, dtype=torch.bfloat16) * 2,
                "i64": torch.arange(5, dtype=torch.int64) - 2, "i32": torch.arange(4, dtype=torch.int32) * 3,
                "u8": torch.arange(250, 256, dtype=torch.uint8), "bool": torch.tensor([True, False, True]),
                "transposed": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),
                "offset": base[3:7], "shares_storage": base, "scalar": torch.tensor(3.5),
                "param": nn.Parameter(torch.full((2,), 1.25)), "with_attr": attr},
               path("dtypes.pth"), pickle_protocol=4)

    # Hostile and broken files.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02cos\nsystem\nX\x05\x00\x00\x00touch\x85R.")
        z.writestr("archive/version", b"3\n")
    open(path("forbidden_global.pth"), "wb").write(buf.getvalue())
    whole = open(path("resnet18_tv.pth"), "rb").read()
    open(path("truncated.pth"), "wb").write(whole[: len(whole) // 2])

    for f in sorted(os.listdir(OUT)):
        print(f"{f}: {os.path.getsize(path(f))} bytes")


if __name__ == "__main__":
    main()
