"""The registration engines the library knows, each declared once.

An :class:`EngineSpec` holds everything the rest of the library needs to know about an engine: its
name, how messages call it, the pip distribution that provides it and the module that distribution
installs, how it runs (its thread default), how its log reports progress, and the two modules of this
package that implement it:

* ``runner`` (imported only when the engine runs, it loads the engine's package): ``import_engine()``
  and ``run(...)`` (see :func:`.run.run_engine`);
* ``runner_2d`` (imported only when the engine runs on two 2D images): ``run_2d(request)`` with a
  :class:`.request_2d.EngineRequest2D` (see :func:`.run.run_engine_2d`); its presets are listed in
  ``Presets/presets_2d.json``;
* ``recipe`` (light, no engine import): ``read_preset(name, description, files)``, the sampler's
  limits, ``stage_sampling(preset, spacing_mm)`` and ``needed_valid_fraction(stages, volume_mm3)``
  (see :mod:`.sampling`), and ``field_shrink(preset, voxel_mm)``, the shrink factor of the level on which a
  deformable stage keeps dense displacement fields (None: none; see :mod:`..process.preflight`).

Standard library only, so that building a command line or a panel imports no engine.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from types import ModuleType

from ..core.cores import usable_cores
from ..core.errors import InputError
from ..core.version import distribution_version


@dataclass(frozen=True)
class EngineSpec:
    """One engine. Transforms it returns map fixed to moving points (LPS mm)."""

    name: str  # what users choose: ``--engine NAME``, the module's engine box
    label: str  # how messages name it
    distribution: str  # the pip distribution that provides it
    import_name: str  # the top-level module that distribution installs
    runner: str  # module of this package that runs it
    recipe: str  # module of this package that reads its presets and states its sampler's limits
    preset_suffix: str  # a custom preset file's extension
    default_threads: int | None  # None: every core; ANTs repeats a result only with 1
    log_name: str  # the log file the runner writes in its work folder
    log_level_pattern: str  # a log line that starts an optimisation level (regex, multiline)
    log_iteration_pattern: str  # one iteration's log row (regex, multiline)
    runner_2d: str = ""  # module of this package that registers two 2D images ("": the engine has no 2D)
    nonlinear_inverse: bool = False  # its deformable results come with an exact inverse (ANTs SyN; not a B-spline)

    def threads_when_unset(self, share: int) -> int:
        """The threads a run gets when the user gives none: the engine's own default when it has one (ANTs: 1, the
        only count that repeats a result), else ``share`` of the cores."""
        return self.default_threads or share

    def implementation(self) -> ModuleType:
        """The runner module (imports the engine's package when its ``run`` or ``import_engine`` is called)."""
        return importlib.import_module(f"{__package__}.{self.runner}")

    def implementation_2d(self) -> ModuleType:
        """The 2D runner module; an engine without one is refused, naming those that have one."""
        if not self.runner_2d:
            able = ", ".join(spec.name for spec in _SPECS if spec.runner_2d)
            raise InputError(f"{self.label} does not register 2D images: choose --engine {able}")
        return importlib.import_module(f"{__package__}.{self.runner_2d}")

    def recipe_module(self) -> ModuleType:
        return importlib.import_module(f"{__package__}.{self.recipe}")

    def installed_version(self) -> str | None:
        """The installed version of the engine's own distribution, or None when it is not installed.

        Judged by the distribution, not by ``import_name``: another package's ``itk`` is not itk-elastix.
        """
        return distribution_version(self.distribution)

    def version(self) -> str:
        """"<distribution> <version>", for provenance."""
        return f"{self.distribution} {self.installed_version() or 'not installed'}"

    def threads(self, requested: int | None) -> int:
        """The engine threads of a run: as requested, else the engine's default, else every core it may use."""
        return int(requested or self.default_threads or usable_cores())

    @property
    def log_patterns(self) -> tuple[re.Pattern, re.Pattern]:
        return re.compile(self.log_level_pattern, re.MULTILINE), re.compile(self.log_iteration_pattern, re.MULTILINE)


_SPECS = (
    EngineSpec(
        name="elastix",
        label="elastix",
        distribution="itk-elastix",
        import_name="itk",
        runner="elastix",
        recipe="elastix_recipe",
        preset_suffix=".txt",
        default_threads=None,
        log_name="elastix.log",
        log_level_pattern=r"^1:ItNr",
        log_iteration_pattern=r"^\d+\t",
        runner_2d="elastix_2d",
    ),
    EngineSpec(
        name="ants",
        label="ANTs",
        distribution="antspyx",
        import_name="ants",
        runner="ants",
        recipe="ants_recipe",
        preset_suffix=".json",
        default_threads=1,
        log_name="ants.log",
        log_level_pattern=r"DIAGNOSTIC,Iteration",
        log_iteration_pattern=r"DIAGNOSTIC,\s+\d+,",
        runner_2d="ants_2d",
        nonlinear_inverse=True,
    ),
)

ENGINES: dict[str, EngineSpec] = {spec.name: spec for spec in _SPECS}
ENGINE_NAMES: tuple[str, ...] = tuple(ENGINES)
DEFAULT_ENGINE: str = _SPECS[0].name


def runner_spec(module: str) -> EngineSpec:
    """The engine whose runner (3D or 2D) is the module called ``module`` (its ``__name__``)."""
    short = module.rpartition(".")[2]
    return next(spec for spec in _SPECS if short in (spec.runner, spec.runner_2d))


def engine_spec(name: str) -> EngineSpec:
    """The engine called ``name``; an unknown name is refused, naming the choices."""
    try:
        return ENGINES[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown engine '{name}': choose one of {', '.join(ENGINE_NAMES)}") from None
