"""nodes: the MRML layer. Volume, transform, markups and table nodes in and out; node-level jobs that run
in a worker process and touch the scene only when they succeed. The only layer that imports MRML."""
