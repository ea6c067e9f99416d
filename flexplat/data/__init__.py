"""The data layer: codecs, checks, the tf.data pipeline, augmentation and splits."""
