"""The TFRecord framing of prepared shards, written without TensorFlow, against TensorFlow's
own writer and reader."""

import numpy as np
import tensorflow as tf

from keras_mlrs.data.shards.format import frame_record


def test_framing_is_byte_for_byte_tensorflows(tmp_path):
    rng = np.random.default_rng(0)
    payloads = [b"", b"x", rng.bytes(7), rng.bytes(4096), rng.bytes(250_000)]
    path = tmp_path / "tf.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for payload in payloads:
            writer.write(payload)
    ours = b"".join(frame_record(p) for p in payloads)
    assert ours == path.read_bytes()
    mine = tmp_path / "ours.tfrecord"
    mine.write_bytes(ours)
    read = [r.numpy() for r in tf.data.TFRecordDataset(str(mine)).apply(tf.data.experimental.ignore_errors(log_warning=False))]
    assert read == payloads  # TensorFlow checks both CRCs of every record
    damaged = bytearray(ours)
    damaged[len(frame_record(payloads[0])) + 12] ^= 1  # a bit of the second payload
    mine.write_bytes(bytes(damaged))
    try:
        got = [r.numpy() for r in tf.data.TFRecordDataset(str(mine))]
    except tf.errors.DataLossError:
        got = None
    assert got is None  # the checksum is a real one: a flipped bit is caught
