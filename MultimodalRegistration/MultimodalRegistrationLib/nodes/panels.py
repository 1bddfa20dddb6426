"""What the module panels need from the library besides the nodes: the engines and their presets, the
status lines, the session's warm worker. Module files import this, the other ``nodes`` modules and
``core`` only (a test checks it), so the layers below can change without touching them."""

from __future__ import annotations

from ..engines.install import EngineInstallDeclined, EngineInstallError, engine_installed, ensure_engines
from ..engines.presets import list_presets
from ..engines.registry import DEFAULT_ENGINE, ENGINE_NAMES
from ..prep.options import PrepOptions
from ..process.warm_worker import WarmSlot
from ..process.worker import worker_python
from ..registration.describe import describe_guidance, describe_result

# Where the modules' help texts link (the docs/ pages of EXTENSION_HOMEPAGE in CMakeLists.txt).
DOCS_URL = "https://github.com/multimodal-registration/SlicerMultimodalRegistration/blob/main/docs/"

# The works every module's acknowledgement asks users to cite, as an HTML list (references: not translated).
CITATIONS_HTML = (
    "<ul>"
    "<li>elastix: S. Klein, M. Staring, K. Murphy, M. A. Viergever, J. P. W. Pluim. elastix: a toolbox for "
    "intensity-based medical image registration. IEEE Transactions on Medical Imaging 29(1):196-205, 2010."
    "</li>"
    "<li>elastix: D. P. Shamonin, E. E. Bron, B. P. F. Lelieveldt, M. Smits, S. Klein, M. Staring. Fast "
    "parallel image registration on CPU and GPU for diagnostic classification of Alzheimer's disease. "
    "Frontiers in Neuroinformatics 7:50, 2014.</li>"
    "<li>ANTs: B. B. Avants, C. L. Epstein, M. Grossman, J. C. Gee. Symmetric diffeomorphic image "
    "registration with cross-correlation: evaluating automated labeling of elderly and neurodegenerative "
    "brain. Medical Image Analysis 12(1):26-41, 2008.</li>"
    "<li>3D Slicer: A. Fedorov, R. Beichel, J. Kalpathy-Cramer, et al. 3D Slicer as an image computing "
    "platform for the Quantitative Imaging Network. Magnetic Resonance Imaging 30(9):1323-1341, 2012.</li>"
    "</ul>"
)

__all__ = [
    "CITATIONS_HTML",
    "DOCS_URL",
    "DEFAULT_ENGINE",
    "EngineInstallDeclined",
    "EngineInstallError",
    "ENGINE_NAMES",
    "PrepOptions",
    "WarmSlot",
    "describe_guidance",
    "describe_result",
    "engine_installed",
    "ensure_engines",
    "list_presets",
    "worker_python",
]
