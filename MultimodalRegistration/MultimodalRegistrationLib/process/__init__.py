"""process: work in a child process. The JSON-lines worker protocol (start, progress, cancel, reap), the
job types it runs (registration, preparation) and the stability restarts that run several at once."""
