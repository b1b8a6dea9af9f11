"""ix_pipeline: the messaging interaction data lifecycle as a Dagster code location."""

import os

# deltalake's Rust core allocates through its own jemalloc, which by default keeps freed pages
# for 10 s. An expiry frees the Delta writer's buffers (hundreds of MB) just before DuckDB needs
# memory for the verification and the checkpoint, so both were held at once: a 10 M-event
# expiry peaked at 0.92-1.0 GB with DuckDB limited to 256 MB after the write. Returning the
# pages within a second (a background thread does it) lets the checkpoint have 640 MB, about
# 0.7 s faster, at 0.89 GB peak. jemalloc reads this once, when deltalake is first loaded:
# hence here, before any of our modules imports it. A setting made outside wins.
os.environ.setdefault(
    "_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"
)
