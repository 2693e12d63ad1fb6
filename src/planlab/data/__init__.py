"""Disk: OpenScene log reader/writer (allow-listed unpickler), sensor blobs, ``SceneLoader``, splits,
label-fraction subsets and manifests.

Modules: ``safe_pickle`` (safe reading, numpy-1.x-portable writing), ``logs`` (log files),
``frame_dicts`` (building frame dicts in the OpenScene layout), ``sensors``
(JPEG / PCD blobs), ``frames`` (frame dicts → scene objects), ``layout`` (dataset directories),
``loader`` (SceneLoader), ``manifest``, ``splits`` (by log), ``subsets`` (label fractions), ``info`` and
``check`` (the ``planlab data`` reports).
"""

from planlab.data.frame_dicts import link_samples, make_frame_dict
from planlab.data.layout import DatasetLayout
from planlab.data.loader import SceneLoader, scene_windows
from planlab.data.logs import read_log, read_log_file, write_log
from planlab.data.manifest import Manifest, build_manifest, load_manifest
from planlab.data.safe_pickle import portable_dump, portable_dumps, safe_load, safe_loads
from planlab.data.sensors import read_jpeg, read_pcd, write_jpeg, write_pcd
from planlab.data.splits import LogSplit, load_log_split, make_log_split
from planlab.data.subsets import Subset, load_subset, make_subsets, scene_filter_of

__all__ = [
    "DatasetLayout",
    "LogSplit",
    "Manifest",
    "SceneLoader",
    "Subset",
    "build_manifest",
    "load_log_split",
    "load_manifest",
    "link_samples",
    "load_subset",
    "make_log_split",
    "make_frame_dict",
    "make_subsets",
    "portable_dump",
    "portable_dumps",
    "read_jpeg",
    "read_log",
    "read_log_file",
    "read_pcd",
    "safe_load",
    "safe_loads",
    "scene_filter_of",
    "scene_windows",
    "write_jpeg",
    "write_log",
    "write_pcd",
]
