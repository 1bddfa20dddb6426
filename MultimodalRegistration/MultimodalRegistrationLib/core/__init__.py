"""core: the bottom layer. Transforms (the one LPS<->RAS convention), images, the one mutual information,
errors, atomic files, user choices and defaults, phantoms with known truth. Imports nothing above it."""
