#!/usr/bin/python3
"""Trains the tiny CNN of train.py from webdataset-style tar shards, read with the stdlib tarfile.

    train_tar_shards.py [--data /data/demo/shards] [--epochs 1] [--workers 4] ...

--data is a directory of shard-*.tar files, each holding samples NNNNNN.jpg + NNNNNN.cls (the
class index as text), and classes.txt (class names, one a line; else give --num-classes), as
examples/make_dataset.py writes them. An IterableDataset gives each DataLoader worker its own
shards (torch.utils.data.get_worker_info) and streams them front to back with tarfile's "r|"
mode: one sequential read per shard, the access pattern of large-scale training. Under
LD_PRELOAD=libdscache.so the shards are S3 objects read as local files.
"""
import argparse
import glob
import io
import os
import random
import sys
import tarfile
import time

import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train as common  # noqa: E402  (the model, transforms, loop and options of train.py)


class TarShards(torch.utils.data.IterableDataset):
    def __init__(self, shards, transform, shuffle_buffer=256, seed=0):
        super().__init__()
        self.shards, self.transform = shards, transform
        self.shuffle_buffer, self.seed, self.epoch = shuffle_buffer, seed, 0

    def set_epoch(self, epoch):  # the workers start after this: they see it
        self.epoch = epoch

    def samples(self, path):
        """(jpeg bytes, class index) for each sample of one shard, in file order."""
        pending = {}
        with tarfile.open(path, mode="r|") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                key, _, ext = m.name.rpartition(".")
                if ext not in ("jpg", "cls"):
                    continue
                pending.setdefault(key, {})[ext] = tf.extractfile(m).read()
                if len(pending[key]) == 2:
                    s = pending.pop(key)
                    yield s["jpg"], int(s["cls"])
        if pending:
            raise RuntimeError("%s: samples without both .jpg and .cls: %s" % (path, sorted(pending)[:5]))

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        rng = random.Random(self.seed * 1000003 + self.epoch * 1009 + wid)
        shards = list(self.shards)
        random.Random(self.seed + self.epoch).shuffle(shards)  # the same order in every worker
        buf = []
        for path in shards[wid::nw]:
            for jpg, cls in self.samples(path):
                buf.append((jpg, cls))
                if len(buf) >= self.shuffle_buffer:
                    yield self.decode(*buf.pop(rng.randrange(len(buf))))
        rng.shuffle(buf)
        for s in buf:
            yield self.decode(*s)

    def decode(self, jpg, cls):
        img = Image.open(io.BytesIO(jpg)).convert("RGB")
        return self.transform(img), cls


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(p, "/data/demo/shards")
    p.set_defaults(epochs=1)
    p.add_argument("--num-classes", type=int, default=0, help="default: the lines of DATA/classes.txt")
    a = p.parse_args()
    shards = sorted(glob.glob(os.path.join(a.data, "*.tar")))
    if not shards:
        sys.exit("train_tar_shards.py: no *.tar shards in %s" % a.data)
    a.workers = min(a.workers, len(shards))  # a worker without a shard would have nothing to do
    device, threads, cores = common.setup(a)
    n_classes = a.num_classes
    if not n_classes:
        try:
            with open(os.path.join(a.data, "classes.txt")) as f:
                n_classes = len([line for line in f if line.strip()])
        except FileNotFoundError:
            sys.exit("train_tar_shards.py: %s has no classes.txt: give --num-classes" % a.data)
    size = sum(os.path.getsize(s) for s in shards)
    print("train_tar_shards.py: %d shards (%.1f MB) in %s, %d classes; %d workers, batch %d, "
          "%d torch threads on %d cores, device %s"
          % (len(shards), size / 1e6, a.data, n_classes, a.workers, a.batch_size, threads, cores, device), flush=True)
    ds = TarShards(shards, common.train_transform(a.image_size), seed=a.seed)
    # Not persistent: each epoch's workers start from the dataset as set_epoch() left it.
    loader = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, num_workers=a.workers,
                                         pin_memory=device.type == "cuda")
    common.train("train_tar_shards.py", common.TinyCNN(n_classes, a.image_size), loader, a, device)


if __name__ == "__main__":
    main()
