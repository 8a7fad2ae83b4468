"""Feature loading: each feature read once into one contiguous array, cached packed on disk, batched on the device."""
from dataloader.batches import DeviceBatches, SampleSet, build_sample_set
from dataloader.feature_store import FeatureSpec, feature_registry, load_features, lookup_features

__all__ = [
    "DeviceBatches",
    "FeatureSpec",
    "SampleSet",
    "build_sample_set",
    "feature_registry",
    "load_features",
    "lookup_features",
]
