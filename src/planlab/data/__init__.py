"""Disk: OpenScene log reader/writer (allow-listed unpickler), sensor blobs, ``SceneLoader``, splits, label-fraction subsets, feature caches."""
