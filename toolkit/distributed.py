"""Data-parallel training on PyTorch's own DistributedDataParallel, as started by ``torchrun``.

    torchrun --nproc_per_node=2 train.py ...           # one machine, 2 processes
    torchrun --nnodes=2 --node_rank=R --master_addr=HOST --nproc_per_node=8 train.py ...

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them (plain ``python train.py``) a run is one
process and every helper here is the identity. Backend: nccl on CUDA (one GPU per rank, cuda:LOCAL_RANK),
gloo on CPU. Every rank holds the same seeded permutation and trains on its contiguous share of every
global batch (``--batch_size`` is the global batch). The loss of each share is normalised by the *global*
sum of sample weights (``Dist.total``), so the summed gradient of the ranks is exactly the single-process
gradient of the whole batch, including an uneven last batch; DDP averages gradients over ranks, so each
rank back-propagates ``world × loss`` (``Dist.scale``).
"""
import dataclasses
import gc
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank, world size, local rank (GPU index on its node)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where collectives run (set by ``init``; nccl needs CUDA tensors)

    @property
    def enabled(self):
        return self.world > 1

    @property
    def is_main(self):
        """Only rank 0 writes the run directory, logs, progress bar and checkpoints."""
        return self.rank == 0

    def shard(self, size):
        """The slice of a global batch of ``size`` samples that this rank trains on: contiguous parts that
        differ by at most one sample (the first ``size % world`` ranks take one more)."""
        base, extra = divmod(size, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def total(self, value):
        """Sum over ranks of a (no-grad) tensor, e.g. a loss denominator, or of a number (as a float64 tensor);
        the identity in one process."""
        if not torch.is_tensor(value):
            value = torch.tensor(value, dtype=torch.float64, device=self.device)
        if not self.enabled:
            return value
        value = value.detach().clone()
        dist.all_reduce(value)
        return value

    def scale(self, loss):
        """The loss to back-propagate: DDP averages gradients over ranks, the global loss wants their sum."""
        return loss * self.world if self.enabled else loss

    def gather(self, obj):
        """[obj of rank 0, obj of rank 1, ...] on every rank (a one-element list in one process)."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank, so decisions (best epoch, early stop) are identical everywhere."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self):
        if self.enabled:
            dist.barrier()

    def wrap(self, model, device, find_unused=False):
        """The model DistributedDataParallel-wrapped (one device per rank), or itself in one process.

        ``find_unused``: some parameters get no gradient (e.g. the valence head with --val_weight 0)."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                       find_unused_parameters=find_unused)


LOCAL_RANK_VARIABLES = ("LOCAL_RANK", "SLURM_LOCALID")  # torchrun, srun


def local_rank(default=0, env=None):
    """This process's GPU index on its node: torchrun's LOCAL_RANK or srun's SLURM_LOCALID, else ``default``."""
    env = os.environ if env is None else env
    for name in LOCAL_RANK_VARIABLES:
        value = env.get(name, "")
        if value.isdigit():
            return int(value)
    return default


def from_env():
    """The job torchrun (or a test's spawn) described in RANK / WORLD_SIZE / LOCAL_RANK; one process without them."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", os.environ["RANK"])))


def init(ctx, device):
    """Join the process group (nccl on CUDA, gloo on CPU) unless already joined or alone; returns ``ctx`` on ``device``."""
    if ctx.enabled and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ctx.rank, world_size=ctx.world)
    return dataclasses.replace(ctx, device=device)


def close(ctx):
    """Leave the process group. What still holds it is freed first: a DDP wrapper caught in a reference
    cycle would otherwise be collected during interpreter shutdown, where destroying gloo's worker threads
    can abort the process ("terminate called without an active exception")."""
    if ctx.enabled and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def unwrap(model):
    """The plain model inside a DDP wrapper (for its loss, state dict and checkpoint)."""
    return getattr(model, "module", model)
