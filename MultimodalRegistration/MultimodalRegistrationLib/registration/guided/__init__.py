"""Registration guided by paired segmentations and landmarks: the engine's terms, the start and the score."""
