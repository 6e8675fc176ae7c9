"""The one family of errors eventshard raises on purpose.

Every such error derives from :class:`EventshardError` and keeps a standard base as well
(``ValueError`` or ``OSError``), so code written against those still works. Each message starts
with where the problem is: the file or URL, then the byte offset, row or sample key. The
``shardgen`` command prints it as one line (``--debug`` shows the traceback) and exits with 1.

==========================================  ================================================
class                                       raised for
==========================================  ================================================
``shardgen.formats.events.FormatError``     a raw recording is damaged (file, byte offset)
``shardgen.formats.aedat3.AedatError``      an AEDAT 3.1 file is damaged (a raw ``FormatError``)
``shardgen.datasets.base.DatasetError``     a download is missing, incomplete or malformed
``shardgen.download.DownloadError``         a download failed or its md5 differs (a ``DatasetError``)
``shardgen.archive.ArchiveError``           an archive member is unsafe, damaged or short
``shardgen.jobs.MergeError``                ``shardgen merge`` finds parts missing or disagreeing
``loader.errors.FormatError``               a shard, sample frame or index is malformed
:class:`IntegrityError`                     bytes differ from what the index or md5 promises
``loader.shards.ShardIntegrityError``       a shard differs from its index entry: size, sha256,
                                            a sample frame that does not decode (URL, sample,
                                            byte offset); also a ``FormatError``
``loader.shards.ShardMissingError``         the index names a shard that is not there (URL);
                                            also a ``FileNotFoundError``
``loader.shards.ShardSetNotFoundError``     no ``index.json`` at the URL (``FileNotFoundError``)
``loader.shards.StorageError``              storage failed after the retries (URL)
``loader.errors.CacheError``                the local cache folder failed (a ``StorageError``)
:class:`ConfigurationError`                 arguments or options that cannot work together
==========================================  ================================================

This module imports nothing, so both sides (``shardgen`` and the torch-free ``loader.format``)
can use it; the classes are also importable from the modules that raise them.
"""

from __future__ import annotations


class EventshardError(Exception):
    """Base of every error eventshard raises on purpose."""


class IntegrityError(EventshardError, ValueError):
    """Bytes differ from what was promised: sha256 of a shard, md5 of a download, a size, a CRC."""


class ConfigurationError(EventshardError, ValueError):
    """Arguments or options that cannot work (unknown option, bad split rule, conflicting settings)."""


class FormatError(EventshardError, ValueError):
    """A shard, sample or index does not follow the eventshard format (``loader.format`` raises it)."""


class StorageError(EventshardError, OSError):
    """A read that kept failing on transient errors; the message names the URL and the byte range."""


class ShardIntegrityError(IntegrityError, FormatError):
    """A shard is not what the index promises: missing, another size or sha256, a sample that does not decode.

    The message starts with the shard's URL, then, where one sample is concerned, its number in the
    shard and its byte offset. Also a :class:`~loader.format.FormatError` (what these cases raised
    before), so handlers written against either class keep working.

    Attributes
    ----------
    url : str or None
        The shard's URL.
    sample : int or None
        The sample's number in the shard (the first one cut off, for a truncated shard).
    offset : int or None
        The byte offset in the shard where the problem starts.
    """

    def __init__(self, message: str, url: str | None = None, sample: int | None = None, offset: int | None = None):
        super().__init__(message)
        self.url = url
        self.sample = sample
        self.offset = offset


class ShardMissingError(ShardIntegrityError, FileNotFoundError):
    """The index names a shard that is not there (also a ``FileNotFoundError``; never retried)."""


class ShardSetNotFoundError(EventshardError, FileNotFoundError):
    """No ``index.json`` at the URL: not a shard set, or its conversion did not finish."""


class CacheError(StorageError):
    """The local cache folder failed (full disk, permissions): names the cache folder; never skipped."""
