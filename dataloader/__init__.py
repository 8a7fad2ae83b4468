"""Feature loading: each feature read once into one contiguous array, cached packed on disk, batched on the device."""
from dataloader.batches import DeviceBatches, Frames, FrameTensor, SampleSet, build_sample_set
from dataloader.feature_store import FeatureSpec, Ragged, load_features, load_store
from dataloader.kinds import KINDS, FeatureKind, kind_for_name, kind_of, register_kind

__all__ = [
    "DeviceBatches",
    "FeatureKind",
    "FeatureSpec",
    "FrameTensor",
    "Frames",
    "KINDS",
    "Ragged",
    "SampleSet",
    "build_sample_set",
    "kind_for_name",
    "kind_of",
    "load_features",
    "load_store",
    "register_kind",
]
