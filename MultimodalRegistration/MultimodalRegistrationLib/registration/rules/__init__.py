"""The rules around an engine run: where it may sample (masks, sampling region) and whether its result is kept."""
