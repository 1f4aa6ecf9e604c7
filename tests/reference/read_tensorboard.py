#!/usr/bin/env python3
"""Reads a TensorBoard event file with TensorBoard's own loader and prints what it found as JSON.

Used by tests/test_tensorboard.cpp to check that the event files mtl writes are the ones
TensorBoard shows. Needs only the `tensorboard` package (pip install tensorboard), no TensorFlow.

    python3 tests/reference/read_tensorboard.py RUN_DIR_OR_EVENT_FILE

Output: {"file_version": "brain.Event:2",
         "scalars": {tag: [[step, value], ...]},
         "images": {tag: [[step, width, height, png_bytes], ...]}}
Values are printed with repr precision, so a float32 written by mtl comes back exactly.
"""
import json
import sys

from tensorboard.backend.event_processing import event_accumulator


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    # 0 keeps every event: the default size guidance samples scalars and keeps only 4 images.
    acc = event_accumulator.EventAccumulator(
        sys.argv[1], size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0})
    acc.Reload()
    tags = acc.Tags()
    out = {
        "file_version": acc.file_version,
        "scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
        "images": {t: [[e.step, e.width, e.height, len(e.encoded_image_string)] for e in acc.Images(t)]
                   for t in tags["images"]},
    }
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
