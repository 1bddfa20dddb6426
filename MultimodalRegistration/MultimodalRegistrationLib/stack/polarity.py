"""One slide polarity for a stack: a section whose border does not tell it takes the stack's.

Every section of a stack lies on the same kind of slide (bright field or dark field), but one scanned cropped inside
its tissue has no glass at its border, and its own reading can flip (:func:`.sections.slide_polarity`). Its working
image then has the opposite contrast to its neighbours', and their pairs fail: a helper's H&E stack, sections 3-6 of
10 cropped inside the tissue, was torn into three pieces 255 mm apart, the bridging pairs at correlation 0.14-0.17
(0.01 and 0.04 mm off with one polarity).

The stack's polarity is the majority of its sure sections read so far. Sections are handed on in order; an unsure
one is held until a sure one has been read (or the stack ends: then the majority of all), and read again with the
stack's polarity where its own differs.
"""

from __future__ import annotations

from .sections import SectionReport, WorkingSection, contrasted

Decided = tuple[SectionReport, WorkingSection | None]  # a section whose polarity is decided (None: not usable)


class StackPolarity:
    """Holds unsure sections until the stack's polarity is known (see the module notes)."""

    def __init__(self) -> None:
        self.sure_votes: list[bool] = []
        self.own_votes: list[bool] = []
        self.held: list[Decided] = []

    @property
    def bright(self) -> bool | None:
        """The stack's polarity from its sure sections so far (True: bright slides); None before any."""
        return sum(self.sure_votes) * 2 >= len(self.sure_votes) if self.sure_votes else None

    def add(self, report: SectionReport, working: WorkingSection | None) -> list[Decided]:
        """The sections (reports and working sections, None if unusable) now decided, in order."""
        if working is not None:
            (self.sure_votes if working.sure else self.own_votes).append(working.bright)
        self.held.append((report, working))
        if self.bright is None and any(w is not None and not w.sure for _, w in self.held):
            return []
        return self._release(self.bright)

    def finish(self) -> list[Decided]:
        """The sections still held: with the majority of every section's own polarity when none was sure."""
        bright = self.bright
        if bright is None and self.own_votes:
            bright = sum(self.own_votes) * 2 >= len(self.own_votes)
        return self._release(bright)

    def _release(self, bright: bool | None) -> list[Decided]:
        released = [(report, _as_stack(report, working, bright)) for report, working in self.held]
        self.held = []
        return released


def _as_stack(report: SectionReport, working: WorkingSection | None, bright: bool | None) -> WorkingSection | None:
    """``working`` read with the stack's polarity ``bright`` where it is unsure and its own differs."""
    if working is None or working.sure or bright is None or working.bright == bright:
        return working
    again = contrasted(working.gray, report, working.scale, bright)
    kind = "a bright" if bright else "a dark"
    note = f"read as tissue on {kind} slide, as the stack: its border does not show the slide"
    report.note = "; ".join(n for n in (report.note, note) if n)
    return again
