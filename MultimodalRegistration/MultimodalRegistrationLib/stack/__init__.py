"""Serial 2D sections stacked into a volume without drift (``mmreg stack``): :func:`.align.stack_sections`."""
