"""SpikingJelly-style dataset classes over shard sets: change the import and the root, keep the script.

::

    # from spikingjelly.datasets.dvs128_gesture import DVS128Gesture
    from loader.datasets import DVS128Gesture

    train_set = DVS128Gesture("/data/dvsgesture-shards", train=True, data_type="frame",
                              frames_number=20, split_by="number")
    x, label = train_set[0]                      # float32 [20, 2, 128, 128], the true class
    DataLoader(train_set, batch_size=16, shuffle=True, num_workers=4)

The classes take SpikingJelly 2.0.0's arguments (``custom_integrated_frames_dir_name`` is accepted
and ignored: nothing is written to disk) and are map-style ``torch.utils.data.Dataset`` objects, like
SpikingJelly's: ``len(ds)`` comes from the index and ``ds[i]`` fetches sample ``i`` alone by one
byte-range read of its zstd frame (the index's per-sample offsets), then integrates frames on the
fly. Shuffle with ``DataLoader(shuffle=True)`` or a ``DistributedSampler`` as before. For
training from object storage :class:`loader.EventShardDataset` (streaming, shard-sequential reads)
is faster; these classes suit evaluation, notebooks and unchanged scripts.

Differences from SpikingJelly, all deliberate (``docs/MIGRATING.md``):

* ``root`` is a shard set (folder or URL) written by ``shardgen convert``, not a download folder.
* Labels are the true classes (DVS128 Gesture: csv class − 1; SpikingJelly numbers the folders
  ``0 … 10`` in string order, so its label 2 is class 10).
* ``ds[i]`` is SpikingJelly's ``i``-th sample of the split (shards store a seeded permutation,
  recorded in the index); ``return_key=True`` gives each item's key, SpikingJelly's file path
  without ``.npz``.
* Frames are ``float32`` (SpikingJelly: ``float64``), same values; event columns keep their compact
  types (``x``, ``y`` ``uint8``/``uint16``, ``p`` ``uint8``, ``t`` ``int64``), same values.
* ``split_by="time"`` gives an empty frame for an empty window (SpikingJelly raises).
* ``transform`` is applied to what SpikingJelly applies it to: the frames for ``data_type="frame"``,
  the events dict for ``data_type="event"`` (``EventShardDataset`` applies it to the events before
  integration).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from torch.utils.data import Dataset

from loader.dataset import EventShardDataset
from loader.errors import ConfigurationError
from loader.transforms.base import EventTransform, FrameTransform

__all__ = ["ASLDVS", "CIFAR10DVS", "DVS128Gesture", "NCaltech101", "NMNIST", "ShardFolderDataset"]


class ShardFolderDataset(Dataset):
    """A split of a shard set as a map-style dataset with SpikingJelly's arguments and items.

    Subclasses fix the dataset id; use :class:`DVS128Gesture`, :class:`CIFAR10DVS`,
    :class:`NMNIST`, :class:`NCaltech101` or :class:`ASLDVS`.

    Parameters
    ----------
    root : str or path
        Shard-set folder or URL (local, ``file://``, ``http(s)://``, ``s3://``) made by
        ``shardgen convert`` for this dataset.
    train : bool or None
        ``True``: split ``"train"``; ``False``: ``"test"``; ``None``: ``"all"`` (every sample, for
        datasets whose shard set has it).
    data_type : {"event", "frame"}
        ``"event"``: a dict of numpy arrays ``t``, ``x``, ``y``, ``p``; ``"frame"``: float32
        ``[T, 2, H, W]`` numpy arrays.
    frames_number, split_by : int, {"number", "time"}
        Fixed number of frames, split by event count or time (SpikingJelly's semantics).
    duration : int
        Fixed frame duration in µs (variable ``T``; batch with ``pad_sequence_collate``).
    custom_integrate_function : callable
        ``f(events: dict, H, W) -> ndarray``, called in the DataLoader worker.
    custom_integrated_frames_dir_name : str
        Accepted for compatibility and ignored (frames are not stored).
    transform : callable
        Applied to ``x`` (frames, or the events dict) as SpikingJelly does. A
        :class:`loader.transforms.EventTransform` runs on the events before integration, a
        :class:`loader.transforms.FrameTransform` on the frames, each with the sample's generator
        seeded by ``(seed, epoch, key)`` (``docs/AUGMENT.md``).
    frame_transform : callable, optional
        ``data_type="frame"``: applied to the frames (after an event ``transform``).
    seed : int
        Seed of the augmentations' generators; :meth:`set_epoch` chooses the epoch.
    target_transform : callable
        Applied to the label.
    split : str, optional
        Any split name in the index; overrides ``train``.
    return_key : bool
        Items ``(x, label, key)``.
    storage_options, cache_dir, cache_bytes
        As for :class:`loader.EventShardDataset`.

    Attributes
    ----------
    classes : list of str
        Class names; the label indexes them.
    sensor_size : tuple of int
        ``(H, W)`` from the index.
    split : str
        The split read.
    """

    dataset_id: ClassVar[str] = ""
    """The ``dataset`` id the shard set's index must carry."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        train: bool | None = None,
        data_type: str = "event",
        frames_number: int | None = None,
        split_by: str | None = None,
        duration: int | None = None,
        custom_integrate_function: Callable[[dict[str, np.ndarray], int, int], Any] | None = None,
        custom_integrated_frames_dir_name: str | None = None,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        *,
        split: str | None = None,
        return_key: bool = False,
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_bytes: int | None = None,
        frame_transform: Callable[[Any], Any] | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if isinstance(transform, FrameTransform):  # seeded transforms run inside, with the sample's generator
            if frame_transform is not None:
                raise ConfigurationError("pass the frame transforms in one place: transform or frame_transform")
            frame_transform = transform
        inner = transform if isinstance(transform, (EventTransform, FrameTransform)) else None
        if data_type not in ("event", "frame"):
            raise ConfigurationError(f"data_type must be 'event' or 'frame' (SpikingJelly's), got {data_type!r}")
        if split is None:
            split = {True: "train", False: "test", None: "all"}[None if train is None else bool(train)]
        self._ds = EventShardDataset(
            root,
            split=split,
            data_type=data_type,
            frames_number=frames_number,
            split_by=split_by,
            duration=duration,
            custom_integrate_function=custom_integrate_function,
            transform=inner if isinstance(inner, EventTransform) else None,
            frame_transform=frame_transform,
            seed=seed,
            shuffle=False,
            return_key=True,
            storage_options=storage_options,
            cache_dir=cache_dir,
            cache_bytes=cache_bytes,
        )
        got = self._ds.dataset_id
        if self.dataset_id and got != self.dataset_id:
            raise ConfigurationError(
                f"{os.fspath(root)}: a shard set of {got!r}, not {self.dataset_id!r}; "
                f"convert it with `shardgen convert {self.dataset_id} --raw RAW --out OUT`"
            )
        self.root = os.fspath(root)
        self.train = train
        self.split = split
        self.data_type = data_type
        self.frames_number = frames_number
        self.split_by = split_by
        self.duration = duration
        self.custom_integrate_function = custom_integrate_function
        self.transform = transform
        self._plain_transform = None if inner is not None else transform
        self.frame_transform = frame_transform
        self.target_transform = target_transform
        self.return_key = bool(return_key)
        self.classes: list[str] = list(self._ds.classes)
        self.class_to_idx: dict[str, int] = {c: i for i, c in enumerate(self.classes)}
        self.sensor_size: tuple[int, int] = self._ds.sensor_size

    def __len__(self) -> int:
        """Samples in the split (from the index)."""
        return self._ds.split_samples

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        """Sample ``i`` of the split (index order): one byte-range read, decoded and integrated.

        Parameters
        ----------
        i : int
            ``0 <= i < len(self)``; negative counts from the end.

        Returns
        -------
        tuple
            ``(x, label)``, or ``(x, label, key)`` with ``return_key=True``.

        Raises
        ------
        IndexError
            ``i`` is outside the split (ends a plain ``for x, y in ds`` loop).
        """
        x, label, key = self._ds.read_canonical(i)
        if self._plain_transform is not None:
            x = self._plain_transform(x)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return (x, label, key) if self.return_key else (x, label)

    def set_epoch(self, epoch: int) -> None:
        """Epoch of the augmentations' generators (reaches DataLoader workers, persistent ones too)."""
        self._ds.set_epoch(epoch)

    def get_H_W(self) -> tuple[int, int]:
        """``(H, W)`` of the sensor (SpikingJelly's ``get_H_W``; here from the shard set's index)."""
        return self.sensor_size

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={self.root!r}, split={self.split!r}, data_type={self.data_type!r}, "
            f"samples={len(self)})"
        )


class _TrainTest(ShardFolderDataset):
    """SpikingJelly's ``train`` argument first: ``True`` (default) → ``"train"``, ``False`` → ``"test"``."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        train: bool | None = True,
        data_type: str = "event",
        frames_number: int | None = None,
        split_by: str | None = None,
        duration: int | None = None,
        custom_integrate_function: Callable[[dict[str, np.ndarray], int, int], Any] | None = None,
        custom_integrated_frames_dir_name: str | None = None,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(root, train, data_type, frames_number, split_by, duration, custom_integrate_function,
                         custom_integrated_frames_dir_name, transform, target_transform, **kwargs)


class DVS128Gesture(_TrainTest):
    """DVS128 Gesture (``dvs128-gesture``) with SpikingJelly's ``DVS128Gesture`` arguments.

    ``train=True`` → split ``"train"`` (1176 samples), ``False`` → ``"test"`` (288). Labels are the
    true classes 0 … 10 (csv class − 1); see :class:`ShardFolderDataset` for the parameters.
    """

    dataset_id = "dvs128-gesture"


class NMNIST(_TrainTest):
    """N-MNIST (``n-mnist``) with SpikingJelly's ``NMNIST`` arguments (``train=True`` → ``"train"``)."""

    dataset_id = "n-mnist"


class _Whole(ShardFolderDataset):
    """A dataset SpikingJelly loads whole (no ``train`` argument): default split ``"all"``.

    SpikingJelly's signature has no ``train``; here it is keyword-only, after SpikingJelly's
    arguments: ``None`` (default) → ``"all"``, ``True`` → ``"train"``, ``False`` → ``"test"``
    (the split shardgen writes for this dataset, see ``docs/DATASETS.md``).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        data_type: str = "event",
        frames_number: int | None = None,
        split_by: str | None = None,
        duration: int | None = None,
        custom_integrate_function: Callable[[dict[str, np.ndarray], int, int], Any] | None = None,
        custom_integrated_frames_dir_name: str | None = None,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        *,
        train: bool | None = None,
        **kwargs: Any,
    ):
        super().__init__(root, train, data_type, frames_number, split_by, duration, custom_integrate_function,
                         custom_integrated_frames_dir_name, transform, target_transform, **kwargs)


class CIFAR10DVS(_Whole):
    """CIFAR10-DVS (``cifar10-dvs``) with SpikingJelly's ``CIFAR10DVS`` arguments.

    SpikingJelly's class has no ``train``: the default here is split ``"all"`` (every sample), and
    the keyword ``train=True``/``False`` picks shardgen's ``"train"``/``"test"`` split.
    """

    dataset_id = "cifar10-dvs"


class NCaltech101(_Whole):
    """N-Caltech101 (``n-caltech101``) with SpikingJelly's ``NCaltech101`` arguments.

    Default split ``"all"``; keyword ``train=True``/``False`` picks ``"train"``/``"test"``.
    """

    dataset_id = "n-caltech101"


class ASLDVS(_Whole):
    """ASL-DVS (``asl-dvs``) with SpikingJelly's ``ASLDVS`` arguments.

    Default split ``"all"``; keyword ``train=True``/``False`` picks ``"train"``/``"test"``.
    """

    dataset_id = "asl-dvs"


# --------------------------------------------------------------------------- 1-D sensors (SHD, SSC)


class _Heidelberg(ShardFolderDataset):
    """The Heidelberg spiking data sets: 1-D events ``{"t", "x"}`` and frames ``[T, 700]``.

    As SpikingJelly's ``SpikingHeidelbergDigits`` / ``SpikingSpeechCommands``, except that:

    * ``t`` is int64 µs (SpikingJelly: the file's float16 seconds), rounded to the nearest µs;
    * ``duration`` is in ms as in SpikingJelly (it is passed on as ``duration * 1000`` µs), and
      frames follow SpikingJelly's float16 arithmetic value for value (``loader.sensor1d``);
    * labels are the h5 file's own in both data types, and the order is the file's rows
      (SpikingJelly's frame mode sorts the class folders as strings, ``'0', '1', '10', …``, and
      numbers the classes in that order: a bug not copied);
    * ``custom_integrate_function(events, None, W)`` gets one sample's events (SpikingJelly's gets
      the open h5 file, a row and an output folder);
    * ``split_by="time"``, ``duration`` give frames where SpikingJelly raises (empty windows, a
      sample with fewer than two time stamps).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        data_type: str = "event",
        frames_number: int | None = None,
        split_by: str | None = None,
        duration: int | float | None = None,
        custom_integrate_function: Callable[..., Any] | None = None,
        custom_integrated_frames_dir_name: str | None = None,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        **kwargs: Any,
    ):
        duration_us = None if duration is None else (duration * 1000 if isinstance(duration, int) else
                                                     float(duration) * 1000)
        super().__init__(root, None, data_type, frames_number, split_by, duration_us, custom_integrate_function,
                         custom_integrated_frames_dir_name, transform, target_transform, split=split, **kwargs)
        self.duration = duration  # SpikingJelly's ms, as given

    def get_H_W(self) -> tuple[None, int]:  # type: ignore[override]
        """``(None, 700)``: SpikingJelly's ``get_H_W`` of a 1-D sensor."""
        return None, int(self.sensor_size[-1])


class SpikingHeidelbergDigits(_Heidelberg):
    """SHD (``shd``) with SpikingJelly's ``SpikingHeidelbergDigits`` arguments: ``train=True`` → ``"train"``.

    See :class:`_Heidelberg` for what differs from SpikingJelly; :class:`ShardFolderDataset` for the rest.
    """

    dataset_id = "shd"

    def __init__(
        self,
        root: str | os.PathLike[str],
        train: bool = True,
        data_type: str = "event",
        frames_number: int | None = None,
        split_by: str | None = None,
        duration: int | float | None = None,
        custom_integrate_function: Callable[..., Any] | None = None,
        custom_integrated_frames_dir_name: str | None = None,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        **kwargs: Any,
    ):
        if train is None:
            raise ConfigurationError("`train` must be `True` or `False`")
        super().__init__(root, "train" if train else "test", data_type, frames_number, split_by, duration,
                         custom_integrate_function, custom_integrated_frames_dir_name, transform, target_transform,
                         **kwargs)
        self.train = train


class SpikingSpeechCommands(_Heidelberg):
    """SSC (``ssc``) with SpikingJelly's ``SpikingSpeechCommands`` arguments: ``split`` is ``train``/``valid``/``test``.

    See :class:`_Heidelberg` for what differs from SpikingJelly; :class:`ShardFolderDataset` for the rest.
    """

    dataset_id = "ssc"
    splits = ("train", "valid", "test")

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        data_type: str = "event",
        frames_number: int | None = None,
        split_by: str | None = None,
        duration: int | float | None = None,
        custom_integrate_function: Callable[..., Any] | None = None,
        custom_integrated_frames_dir_name: str | None = None,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        **kwargs: Any,
    ):
        if split not in self.splits:
            raise ConfigurationError(f"Invalid split: {split}; valid splits are {self.splits}")
        super().__init__(root, split, data_type, frames_number, split_by, duration, custom_integrate_function,
                         custom_integrated_frames_dir_name, transform, target_transform, **kwargs)


__all__ += ["SpikingHeidelbergDigits", "SpikingSpeechCommands"]


# ------------------------------------------------------------------------------ datasets2: second-wave 2-D sets


class NCARS(_TrainTest):
    """N-CARS (``n-cars``; neither SpikingJelly nor tonic has it) with SpikingJelly's ``train`` argument.

    ``train=True`` → ``"train"``, ``False`` → ``"test"`` (the authors' split); labels
    ``background`` = 0, ``cars`` = 1; sensor 100 × 120. See ``docs/DATASETS.md``.
    """

    dataset_id = "n-cars"


class NAVGestureWalk(_Whole):
    """NAVGesture-walk (``nav-gesture-walk``) with SpikingJelly's ``NAVGestureWalk`` arguments.

    Default split ``"all"`` (SpikingJelly loads every sample); keyword ``train=True``/``False`` picks
    shardgen's seeded ``"train"``/``"test"`` split. Labels: ``do ho le ri se up`` → 0 … 5.
    """

    dataset_id = "nav-gesture-walk"


class NAVGestureSit(_Whole):
    """NAVGesture-sit (``nav-gesture-sit``) with the arguments of SpikingJelly's ``NAVGestureWalk``.

    SpikingJelly 2.0.0's own ``NAVGestureSit`` raises ``TypeError`` when constructed; this class
    follows its Walk class. Default split ``"all"``; ``train=True``/``False`` as for :class:`NAVGestureWalk`.
    """

    dataset_id = "nav-gesture-sit"


class DVSLip(_TrainTest):
    """DVS-Lip (``dvs-lip``) with SpikingJelly's ``DVSLip`` arguments (``train=True`` → ``"train"``).

    100 words numbered in sorted order; sensor 128 × 128.
    """

    dataset_id = "dvs-lip"


class HARDVS(ShardFolderDataset):
    """HARDVS MINI (``hardvs``) with SpikingJelly's ``HARDVS`` arguments.

    ``train_test_val`` is the split, ``"train"``, ``"val"`` or ``"test"`` (SpikingJelly's argument,
    second like there); labels ``action_NNN`` → NNN − 1; sensor 260 × 346.
    """

    dataset_id = "hardvs"

    def __init__(
        self,
        root: str | os.PathLike[str],
        train_test_val: str | None = None,
        data_type: str = "event",
        frames_number: int | None = None,
        split_by: str | None = None,
        duration: int | None = None,
        custom_integrate_function: Callable[[dict[str, np.ndarray], int, int], Any] | None = None,
        custom_integrated_frames_dir_name: str | None = None,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        **kwargs: Any,
    ):
        if train_test_val not in ("train", "val", "test"):
            raise ConfigurationError(f"train_test_val must be 'train', 'val' or 'test', got {train_test_val!r}")
        kwargs.setdefault("split", train_test_val)
        super().__init__(root, None, data_type, frames_number, split_by, duration, custom_integrate_function,
                         custom_integrated_frames_dir_name, transform, target_transform, **kwargs)
        self.train_test_val = train_test_val


class ESImageNet(_TrainTest):
    """ES-ImageNet (``es-imagenet``) with SpikingJelly's ``ESImageNet`` arguments.

    ``train=True`` → ``"train"``, ``False`` → ``"test"`` (the val set). Labels index the folder names
    ``class<N>`` in string order, as SpikingJelly's (``int(self.classes[label][5:])`` is N); sensor 256 × 256.
    """

    dataset_id = "es-imagenet"


class Bullying10kClassification(_TrainTest):
    """Bullying10K (``bullying10k``) with SpikingJelly's ``Bullying10kClassification`` arguments.

    ``train=True`` → ``"train"``, ``False`` → ``"test"`` (every 5th file, see ``docs/DATASETS.md``);
    SpikingJelly's category labels; keys ``<category>/<session>/<stem>`` (every recording kept).
    """

    dataset_id = "bullying10k"


__all__ += ["NCARS", "NAVGestureWalk", "NAVGestureSit", "DVSLip", "HARDVS", "ESImageNet",
            "Bullying10kClassification"]
