"""Detectors as plugins: each folder here is one detector (or family), found by name
through the ``referee.detectors`` entry points. Nothing in the core imports a plugin;
plugins import only the detector contract (``referee.detectors``) and the model."""
