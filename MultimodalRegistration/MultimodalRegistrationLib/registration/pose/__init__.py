"""Where a registration starts: the user's start, the image or foreground centres, or a search over every pose."""
