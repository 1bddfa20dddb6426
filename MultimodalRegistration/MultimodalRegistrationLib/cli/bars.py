"""Progress bars from tqdm when it is installed, else none: Slicer's Python has no tqdm, and an Extension Manager
install brings only the engines, so the Slicer batch script had stopped on it with a traceback before any case
(a helper's packaging sweep). Without tqdm, the per-case lines a pipe gets still tell the progress."""

from __future__ import annotations

from collections.abc import Iterable


class _NoBar:
    """What the code asks of a tqdm bar, doing nothing."""

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def set_description_str(self, *args, **kwargs) -> None:
        pass

    def update(self, *args) -> None:
        pass

    def close(self) -> None:
        pass


def has_bars() -> bool:
    """Whether tqdm can be imported."""
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def progress_bar(**options):
    """A tqdm bar with ``options``, or one that draws nothing without tqdm."""
    if not has_bars():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(**options)


def progress_over(items: Iterable, **options) -> Iterable:
    """``items`` wrapped in a tqdm bar with ``options``, or as they are without tqdm."""
    if not has_bars():
        return items
    from tqdm import tqdm

    return tqdm(items, **options)
