"""Feature loading: each feature read once into one contiguous array, cached packed on disk, batched on the device."""
from dataloader.batches import DeviceBatches, Frames, FrameTensor, SampleSet, build_sample_set
from dataloader.feature_store import FeatureSpec, Ragged, feature_registry, load_features, load_store, lookup_features

__all__ = [
    "DeviceBatches",
    "FeatureSpec",
    "FrameTensor",
    "Frames",
    "Ragged",
    "SampleSet",
    "build_sample_set",
    "feature_registry",
    "load_features",
    "load_store",
    "lookup_features",
]
