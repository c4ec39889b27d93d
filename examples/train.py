#!/usr/bin/python3
"""Trains a tiny CNN on an ImageFolder tree (classNNN/*.jpg) with a multi-worker DataLoader.

    train.py [--data /data/demo/train] [--epochs 2] [--workers 4] [--batch-size 64]
             [--device cpu|cuda|auto]

An ordinary PyTorch training script: nothing in it knows about dscache. Run it under
LD_PRELOAD=libdscache.so with DSCACHE_MOUNTS='/data/demo=s3://bucket/prefix' and the
DataLoader's workers open, read and decode S3 objects as local files. Prints one line per
epoch (samples, wall time, samples/s, time the loop waited for data, loss, accuracy) and a
final line.
"""
import argparse
import os
import sys
import time
import warnings

import torch
import torch.nn as nn
import torchvision
from torchvision import transforms

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
# --workers is what the user asked for; torch's advice against more workers than cores is noise here.
warnings.filterwarnings("ignore", message="This DataLoader will create")


def train_transform(size):
    # The ImageFolder loader decodes each JPEG with PIL; these run in the workers.
    return transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])


class TinyCNN(nn.Module):
    def __init__(self, n_classes, size):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.head = nn.Linear(16 * (size // 4) * (size // 4), n_classes)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


def add_common_args(p, data_default):
    p.add_argument("--data", default=data_default, help="dataset root (default %(default)s)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, default=4, help="DataLoader worker processes")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--image-size", type=int, default=32, help="side of the crops fed to the model")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads for the model in the main process (0: the cores the workers leave)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    p.add_argument("--seed", type=int, default=0)


def setup(a):
    """Seeds, picks the device and the main process's torch threads; returns the device."""
    torch.manual_seed(a.seed)
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("%s: --device cuda, but this torch sees no CUDA device" % os.path.basename(sys.argv[0]))
    cores = len(os.sched_getaffinity(0))
    # The workers decode JPEGs (one thread each, set by the DataLoader); the model gets the
    # cores they leave, at least one. Oversubscribing a small machine only slows both down.
    threads = a.threads or max(1, min(8, cores - a.workers))
    torch.set_num_threads(threads)
    return torch.device(a.device), threads, cores


def train(name, model, loader, a, device, n_samples=None):
    """The training loop, shared by both examples; one line per epoch, then a final line."""
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    total_samples, total_time = 0, 0.0
    for epoch in range(a.epochs):
        if hasattr(loader.dataset, "set_epoch"):
            loader.dataset.set_epoch(epoch)
        model.train()
        seen, correct, loss_sum, wait = 0, 0, 0.0, 0.0
        t0 = time.monotonic()
        t_wait = t0
        for x, y in loader:
            wait += time.monotonic() - t_wait
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(x)
            loss = loss_fn(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += y.shape[0]
            loss_sum += loss.item() * y.shape[0]
            correct += (out.argmax(1) == y).sum().item()
            t_wait = time.monotonic()
        dt = time.monotonic() - t0
        if seen == 0:
            sys.exit("%s: epoch %d read no samples from %s" % (name, epoch + 1, a.data))
        if n_samples is not None and seen != n_samples:
            sys.exit("%s: epoch %d read %d samples, expected %d" % (name, epoch + 1, seen, n_samples))
        total_samples += seen
        total_time += dt
        print("%s: epoch %d/%d: %d samples in %.2f s, %.0f samples/s (waited %.2f s for data), "
              "loss %.3f, accuracy %.1f%%"
              % (name, epoch + 1, a.epochs, seen, dt, seen / dt, wait, loss_sum / seen, 100.0 * correct / seen),
              flush=True)
    print("%s: done: %d epochs, %d samples in %.2f s, %.0f samples/s"
          % (name, a.epochs, total_samples, total_time, total_samples / total_time), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p, "/data/demo/train")
    a = p.parse_args()
    device, threads, cores = setup(a)

    t0 = time.monotonic()
    ds = torchvision.datasets.ImageFolder(a.data, transform=train_transform(a.image_size))
    print("train.py: ImageFolder %s: %d images in %d classes, listed in %.2f s; %d workers, batch %d, "
          "%d torch threads on %d cores, device %s"
          % (a.data, len(ds), len(ds.classes), time.monotonic() - t0, a.workers, a.batch_size, threads,
             cores, device), flush=True)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=a.batch_size, shuffle=True, num_workers=a.workers,
        persistent_workers=a.workers > 0, pin_memory=device.type == "cuda")
    train("train.py", TinyCNN(len(ds.classes), a.image_size), loader, a, device, n_samples=len(ds))


if __name__ == "__main__":
    main()
