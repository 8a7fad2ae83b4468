"""From the raw release (video/, audio/, openface_face/, subtitle CSV) to per-clip feature folders.

Extraction is a stage: it imports the ground layer (toolkit) and nothing of the training path, and the
training path never imports it, so torch-only users need none of its packages (PyAV, transformers,
opensmile, OpenCV). Entry point: ``extract.py`` at the top level."""
