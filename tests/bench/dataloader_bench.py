#!/usr/bin/python3
"""One shuffled epoch of a torch DataLoader (4 workers) over every file under
ROOT, each sample the file's raw bytes as a uint8 tensor (no decoding: the
file system is what is measured). Run it with and without the shim.

    dataloader_bench.py ROOT [WORKERS]
Prints: samples=N bytes=B seconds=S samples_per_s=R
"""
import os
import sys
import time
import warnings

import torch
from torch.utils.data import DataLoader, Dataset


class Files(Dataset):
    def __init__(self, root):
        self.paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with open(self.paths[i], "rb") as f:
            return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)


def total_bytes(batch):
    return sum(t.numel() for t in batch)


def main():
    warnings.filterwarnings("ignore", message=".*worker processes in total.*")  # 4 workers on a 2-core VM
    root = sys.argv[1]
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    ds = Files(root)
    loader = DataLoader(ds, batch_size=64, shuffle=True, num_workers=workers, collate_fn=total_bytes,
                        persistent_workers=False, generator=torch.Generator().manual_seed(0))
    start = time.monotonic()
    nbytes = sum(loader)
    seconds = time.monotonic() - start
    print("samples=%d bytes=%d seconds=%.3f samples_per_s=%.0f" % (len(ds), nbytes, seconds, len(ds) / seconds))


if __name__ == "__main__":
    main()
