#!/usr/bin/env python3
"""Writes tests/reference/esanet_tiny.safetensors: a narrow multi-task ESANet built in PyTorch
with the same module names as mtl's C++ model, one batch of inputs, every output in training and
evaluation mode, the multi-task loss, every parameter gradient and the running statistics after
the training-mode forward. Two variants: BatchNorm (prefix "bn/") and GroupNorm ("gn/").

The C++ test tests/test_esanet_reference.cpp loads the weights into mtl's model and compares
everything per tensor with float32 tolerances. Run wherever PyTorch is installed (CPU is fine):
    python3 tests/reference/make_esanet_reference.py [--out PATH]
"""
import argparse
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

CFG = dict(encoder="resnet18", block="nbt1d", context="ppm", upsampling="learned", num_classes=7,
           width=0.0625, batch=2, height=64, width_px=96, ignore_index=255, silog_lambda=0.85, seed=7)


def ch(c):
    return max(1, int(round(c * CFG["width"])))


def norm_groups(c):
    if c >= 32:
        return 32
    if c >= 16:
        return 16
    if c >= 8:
        return 8
    return max(1, c // 2)


def make_norm(kind, c, eps=1e-5):
    if kind == "batchnorm":
        return nn.BatchNorm2d(c, eps=eps)
    g = norm_groups(c)
    while c % g:
        g -= 1
    return nn.GroupNorm(g, c, eps=eps)


class ConvBNAct(nn.Module):
    def __init__(self, cin, cout, k, norm):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        self.bn = make_norm(norm, cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def downsample(cin, cout, stride, norm):
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), make_norm(norm, cout))


class NonBottleneck1D(nn.Module):
    def __init__(self, cin, planes, stride, norm):
        super().__init__()
        self.conv3x1_1 = nn.Conv2d(cin, planes, (3, 1), stride=(stride, 1), padding=(1, 0))
        self.conv1x3_1 = nn.Conv2d(planes, planes, (1, 3), stride=(1, stride), padding=(0, 1))
        self.bn1 = make_norm(norm, planes, 1e-3)
        self.conv3x1_2 = nn.Conv2d(planes, planes, (3, 1), padding=(1, 0))
        self.conv1x3_2 = nn.Conv2d(planes, planes, (1, 3), padding=(0, 1))
        self.bn2 = make_norm(norm, planes, 1e-3)
        self.downsample = downsample(cin, planes, stride, norm) if (stride != 1 or cin != planes) else None

    def forward(self, x):
        out = F.relu(self.conv3x1_1(x))
        out = F.relu(self.bn1(self.conv1x3_1(out)))
        out = F.relu(self.conv3x1_2(out))
        out = self.bn2(self.conv1x3_2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class Encoder(nn.Module):
    def __init__(self, cin, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, ch(64), 7, stride=2, padding=3, bias=False)
        self.bn1 = make_norm(norm, ch(64))
        blocks = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}[CFG["encoder"]]
        c = ch(64)
        for i in range(4):
            planes = ch(64 << i)
            layers = []
            for b in range(blocks[i]):
                layers.append(NonBottleneck1D(c, planes, 2 if (i > 0 and b == 0) else 1, norm))
                c = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))

    def first(self, x):
        return F.relu(self.bn1(self.conv1(x)))


class SE(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = max(1, c // 16)
        self.fc = nn.Sequential(nn.Conv2d(c, h, 1), nn.ReLU(), nn.Conv2d(h, c, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.fc(F.adaptive_avg_pool2d(x, 1))


class SEFusion(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.se_rgb = SE(c)
        self.se_depth = SE(c)

    def forward(self, r, d):
        return self.se_rgb(r) + self.se_depth(d)


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, groups=c)
        k = torch.tensor([[0.0625, 0.125, 0.0625], [0.125, 0.25, 0.125], [0.0625, 0.125, 0.0625]])
        with torch.no_grad():
            self.conv.weight.copy_(k.expand(c, 1, 3, 3))
            self.conv.bias.zero_()

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Context(nn.Module):
    def __init__(self, cin, cout, norm):
        super().__init__()
        red = max(1, cin // 2)
        self.bins = (1, 5)
        self.features = nn.ModuleList(
            [nn.Sequential(nn.AdaptiveAvgPool2d(b), ConvBNAct(cin, red, 1, norm)) for b in self.bins])
        self.final_conv = ConvBNAct(cin + 2 * red, cout, 1, norm)

    def forward(self, x):
        h, w = x.shape[2:]
        outs = [x] + [F.interpolate(f(x), (h, w), mode="nearest") for f in self.features]
        return self.final_conv(torch.cat(outs, 1))


class DecoderModule(nn.Module):
    def __init__(self, cin, cout, side_classes, norm):
        super().__init__()
        self.conv3x3 = ConvBNAct(cin, cout, 3, norm)
        self.decoder_blocks = nn.Sequential(*[NonBottleneck1D(cout, cout, 1, norm) for _ in range(3)])
        self.upsample = Upsample(cout)
        self.side_output = nn.Conv2d(cout, side_classes, 1) if side_classes else None

    def forward(self, x, skip):
        out = self.decoder_blocks(self.conv3x3(x))
        side = self.side_output(out) if (self.training and self.side_output is not None) else None
        return self.upsample(out) + skip, side


class Decoder(nn.Module):
    def __init__(self, cin, classes, side, norm):
        super().__init__()
        chs = [ch(512), ch(256), ch(128)]
        c = cin
        for i in range(3):
            setattr(self, f"decoder_module_{i + 1}", DecoderModule(c, chs[i], classes if side else 0, norm))
            c = chs[i]
        self.conv_out = nn.Conv2d(c, classes, 3, padding=1)
        self.upsample1 = Upsample(classes)
        self.upsample2 = Upsample(classes)

    def forward(self, x, skips):
        sides = []
        out = x
        for i in range(3):
            out, s = getattr(self, f"decoder_module_{i + 1}")(out, skips[i])
            sides.append(s)
        return self.upsample2(self.upsample1(self.conv_out(out))), sides[::-1]


class ESANet(nn.Module):
    def __init__(self, norm):
        super().__init__()
        self.encoder_rgb = Encoder(3, norm)
        self.encoder_depth = Encoder(1, norm)
        for i in range(5):
            setattr(self, f"se_layer{i}", SEFusion(ch(64 << max(0, i - 1))))
        dec = {1: ch(128), 2: ch(256), 3: ch(512)}
        for i in (1, 2, 3):
            setattr(self, f"skip_layer{i}", nn.Sequential(ConvBNAct(ch(64 << (i - 1)), dec[i], 1, norm)))
        self.context_module = Context(ch(512), ch(512), norm)
        self.decoder = Decoder(ch(512), CFG["num_classes"], True, norm)
        self.depth_decoder = Decoder(ch(512), 1, False, norm)

    def forward(self, rgb, depth):
        r = self.encoder_rgb.first(rgb)
        d = self.encoder_depth.first(depth)
        fuse = self.se_layer0(r, d)
        r = F.max_pool2d(fuse, 3, 2, 1)
        d = F.max_pool2d(d, 3, 2, 1)
        skips = {}
        for i in range(1, 5):
            r = getattr(self.encoder_rgb, f"layer{i}")(r if i == 1 else fuse)
            d = getattr(self.encoder_depth, f"layer{i}")(d)
            fuse = getattr(self, f"se_layer{i}")(r, d)
            if i <= 3:
                skips[i] = getattr(self, f"skip_layer{i}")(fuse)
        ctx = self.context_module(fuse)
        sk = [skips[3], skips[2], skips[1]]
        sem, sides = self.decoder(ctx, sk)
        dep, _ = self.depth_decoder(ctx, sk)
        return sem, sides, torch.sigmoid(dep)


def multitask_loss(sem, sides, depth, labels, depth_target, class_weights):
    ii = CFG["ignore_index"]
    loss = F.cross_entropy(sem, labels, weight=class_weights, ignore_index=ii)
    for s in sides:
        lab = F.interpolate(labels[:, None].float(), size=s.shape[2:], mode="nearest")[:, 0].long()
        loss = loss + F.cross_entropy(s, lab, weight=class_weights, ignore_index=ii)
    valid = depth_target > 0
    d = torch.log(depth[valid]) - torch.log(depth_target[valid])
    silog = (d ** 2).mean() - CFG["silog_lambda"] * d.mean() ** 2
    return loss + silog


def variant(norm, prefix, out):
    torch.manual_seed(CFG["seed"])
    model = ESANet(norm)
    # Perturb the norms' affine parameters so that a swapped weight/bias shows up.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    for k, v in model.state_dict().items():
        out[f"{prefix}param/{k}"] = v.clone()
    n, h, w = CFG["batch"], CFG["height"], CFG["width_px"]
    g = torch.Generator().manual_seed(CFG["seed"] + 1)
    rgb = torch.randn(n, 3, h, w, generator=g)
    depth = torch.randn(n, 1, h, w, generator=g)
    labels = torch.randint(0, CFG["num_classes"], (n, h, w), generator=g)
    labels[torch.rand(n, h, w, generator=g) < 0.1] = CFG["ignore_index"]
    depth_target = torch.rand(n, 1, h, w, generator=g) * 0.9 + 0.05
    depth_target[torch.rand(n, 1, h, w, generator=g) < 0.2] = 0.0
    class_weights = torch.rand(CFG["num_classes"], generator=g) + 0.5
    out.update({f"{prefix}input/rgb": rgb, f"{prefix}input/depth": depth,
                f"{prefix}input/labels": labels.to(torch.int32), f"{prefix}input/depth_target": depth_target,
                f"{prefix}input/class_weights": class_weights})

    model.train()
    sem, sides, dep = model(rgb, depth)
    loss = multitask_loss(sem, sides, dep, labels, depth_target, class_weights)
    loss.backward()
    out[f"{prefix}train/semantic"] = sem.detach()
    for s, name in zip(sides, ("side8", "side16", "side32")):
        out[f"{prefix}train/{name}"] = s.detach()
    out[f"{prefix}train/depth"] = dep.detach()
    out[f"{prefix}train/loss"] = loss.detach().reshape(1)
    for k, p in model.named_parameters():
        out[f"{prefix}grad/{k}"] = p.grad.detach().clone()
    for k, b in model.named_buffers():
        if not k.endswith("num_batches_tracked"):
            out[f"{prefix}buffer_after/{k}"] = b.clone()

    model.eval()
    with torch.no_grad():
        sem, _, dep = model(rgb, depth)
    out[f"{prefix}eval/semantic"] = sem
    out[f"{prefix}eval/depth"] = dep


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/reference/esanet_tiny.safetensors")
    args = ap.parse_args()
    # float64 throughout: the C++ test can then check its float64 run tightly, and its float32
    # run against float32 tolerances, without PyTorch's own float32 rounding in the reference.
    torch.set_default_dtype(torch.float64)
    torch.use_deterministic_algorithms(True)
    out = {}
    variant("batchnorm", "bn/", out)
    variant("groupnorm", "gn/", out)
    out = {k: v.contiguous() for k, v in out.items()}
    meta = {k: str(v) for k, v in CFG.items()}
    meta["torch"] = torch.__version__
    save_file(out, args.out, metadata=meta)
    total = sum(v.numel() * v.element_size() for v in out.values())
    print(f"wrote {args.out}: {len(out)} tensors, {total / 1e6:.2f} MB, torch {torch.__version__}")


if __name__ == "__main__":
    main()
