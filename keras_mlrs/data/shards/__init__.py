"""Our shard format (:mod:`~.format`), ``prepare`` that writes it (:mod:`~.prepare`) and the
reader that turns it into batches (:mod:`~.reader`)."""

from keras_mlrs.data.shards.format import read_manifest, shard_files, verify
from keras_mlrs.data.shards.prepare import prepare
from keras_mlrs.data.shards.reader import PreparedShards, ShardReader, patch_names

__all__ = ["PreparedShards", "ShardReader", "patch_names", "prepare", "read_manifest", "shard_files", "verify"]
