"""The scene renderer of the generated dataset: images per second on the CPU (asv's timers) and on a GPU (CUDA
events, as track_* values). The goal: 10,000 images at 64x64 in at most 60 s on 2 CPU cores.

Run once without asv: ``python benchmarks/benchmarks/bench_scenes.py [--threads 2]``.
"""

import time

import torch

from inv_kernels.data.scenes import render_scenes, sample_latents

try:
    from ._common import cases
except ImportError:  # run as a script: every size

    def cases(full, quick):
        return full


# Images rendered per case, by image size.
COUNTS = {64: 10_000, 128: 1_000, 224: 200}


def _scenes(size: int):
    latents, classes = sample_latents(COUNTS[size], seed=0)
    return latents, classes


class RenderCPU:
    params = (cases([64, 128, 224], [224]),)
    param_names = ["size"]
    timeout = 180  # the 10,000-image case takes tens of seconds
    number = 1
    repeat = 1
    rounds = 1
    warmup_time = 0

    def setup(self, size):
        self.latents, self.classes = _scenes(size)
        render_scenes(self.latents[:64], self.classes[:64], size=size)  # warm the caches (ray directions)

    def time_render(self, size):
        render_scenes(self.latents, self.classes, size=size)

    def track_images_per_second(self, size):
        start = time.perf_counter()
        render_scenes(self.latents, self.classes, size=size)
        return COUNTS[size] / (time.perf_counter() - start)

    track_images_per_second.unit = "images/s"


class RenderGPU:
    params = (cases([64, 128, 224], [224]),)
    param_names = ["size"]
    timeout = 180

    def setup(self, size):
        if not torch.cuda.is_available():
            raise NotImplementedError("no CUDA GPU")
        self.latents, self.classes = _scenes(size)
        self.latents = self.latents.cuda()
        render_scenes(self.latents[:64], self.classes[:64], size=size)

    def track_images_per_second(self, size):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        render_scenes(self.latents, self.classes, size=size)
        end.record()
        end.synchronize()
        return COUNTS[size] / (start.elapsed_time(end) / 1000.0)

    track_images_per_second.unit = "images/s"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Time the scene renderer once per image size.")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64], choices=sorted(COUNTS))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for size in args.sizes:
        latents, classes = _scenes(size)
        render_scenes(latents[:64], classes[:64], size=size, device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        render_scenes(latents, classes, size=size, device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        print(
            f"{COUNTS[size]} images at {size}x{size} on {args.device} ({torch.get_num_threads()} threads): "
            f"{seconds:.2f} s, {COUNTS[size] / seconds:.0f} images/s"
        )
