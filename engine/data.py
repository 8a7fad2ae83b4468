"""What a run trains on: the split's train and valid sets on the device, and the values derived from them."""
import dataclasses
import time


@dataclasses.dataclass
class RunData:
    """The loaded sets plus what the run derives from them (feature dims and levels per expert, classes).

    ``experts`` are the model's expert keys (``feat``, ``feat#2`` ... with --repeat)."""

    train: object
    valid: object
    specs: list
    classes: list
    experts: list
    split_path: str = ""
    load_seconds: float = 0.0
    start_time: float = dataclasses.field(default_factory=time.time)

    @property
    def n_train(self):
        return len(self.train)

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def feat_dims(self):
        from dataloader.feature_store import feature_of

        dims = {s.name: s.dim for s in self.specs}
        return {key: dims[feature_of(key)] for key in self.experts}

    @property
    def feat_levels(self):
        from dataloader.feature_store import feature_of

        levels = {s.name: s.level for s in self.specs}
        return {key: levels[feature_of(key)] for key in self.experts}

    @property
    def missing(self):
        """{feature: {"train": clips without its file, "valid": ...}} (zeros without --allow_missing)."""
        train, valid = self.train.missing_counts(), self.valid.missing_counts()
        return {s.name: {"train": train[s.name], "valid": valid[s.name]} for s in self.specs}

    def derived(self):
        """The derived values a run records next to its flags in args.yaml."""
        return {"n_train": self.n_train, "feat_dims": self.feat_dims, "feat_levels": self.feat_levels,
                "num_classes": self.num_classes, "start_time": self.start_time}


def load_data(args, registry, ctx=None, device=None):
    """The split dict ``<args.train_lst>/<args.dataset>.npy`` with the features of ``args.feat`` on ``device``.
    ``args``: a resolved TrainConfig (``cfg.resolved(registry)``); ``registry``: the features it names.

    In a distributed run rank 0 builds the packed feature cache first and the other ranks then read it."""
    from dataloader.batches import load_split_sets
    from dataloader.feature_store import expert_names
    from toolkit.distributed import Dist
    from toolkit.device import pick_device
    from toolkit.io import cache_folder, remove_stale_temps, split_path as split_file

    ctx = ctx or Dist()
    device = device or pick_device(args.device, args.gpu)
    start = time.time()
    classes = registry.classes(args.emo_rule)
    specs = registry.lookup(args.feat)
    split_path = split_file(args.train_lst, args.dataset)
    cache_dir = cache_folder(args.cache_dir)
    if ctx.is_main and cache_dir:
        remove_stale_temps(cache_dir)  # half-written caches of killed runs
    t0 = time.time()
    experts = expert_names(args.feat, args.repeat)
    if not ctx.is_main:
        ctx.barrier()  # rank 0 builds the packed cache first; the others then read it
    train, valid = load_split_sets(split_path, specs, classes, device, cache_dir, experts, args.pseudo_weight, args.allow_missing,
                                   args.cache_dtype, args.mmap)
    if ctx.is_main:
        ctx.barrier()
    return RunData(train, valid, specs, classes, experts, split_path, time.time() - t0, start)
