#!/usr/bin/python3
"""A "fine-tune" of a Hugging Face checkpoint directory for the UI test:
copies SRC to DST and adds DELTA to every value of one f32 tensor of
DST/model.safetensors (the first whose name contains NEEDLE), so the store
sees exactly one changed tensor. Prints the changed tensor's name.
Usage: finetune.py SRC DST NEEDLE DELTA"""
import json
import shutil
import struct
import sys
from array import array


def main():
    src, dst, needle, delta = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    shutil.copytree(src, dst)
    path = f"{dst}/model.safetensors"
    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        name = next(k for k, v in sorted(header.items())
                    if k != "__metadata__" and needle in k and v["dtype"] == "F32")
        lo, hi = header[name]["data_offsets"]
        f.seek(8 + n + lo)
        values = array("f")
        values.frombytes(f.read(hi - lo))
        for i in range(len(values)):
            values[i] += delta
        f.seek(8 + n + lo)
        f.write(values.tobytes())
    print(name)


if __name__ == "__main__":
    main()
