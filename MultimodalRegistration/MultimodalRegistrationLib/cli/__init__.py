"""cli: ``mmreg`` and its subcommands (register, prep, prealign, qa, presets, demo); :func:`.entry.main` runs it.
Nothing is loaded with the package: the entry point catches a Ctrl-C while the commands load."""
