"""prep: preparing a pair before registration. Spacing fixes, streamed downsampling, common-region crop,
masks and exclusion, N4 bias correction; every output keeps its physical placement."""
