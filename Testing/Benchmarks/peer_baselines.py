"""The peers' defaults, run as a user of each tool would: the reference rows of the benchmarks.

* itk-elastix's default rigid parameter map with geometrical-centre initialisation (what
  SlicerElastix's rigid preset does);
* ants.registration(type_of_transform="Rigid") with its default initialisation.

Run as a script to time the elastix baseline in a fresh process (import, read, register):
    python peer_baselines.py fixed.nrrd moving.nrrd output_folder
It prints "import_s read_s register_s" and writes output_folder/TransformParameters.0.h5.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def elastix_default_rigid(fixed, moving, output_folder) -> Path:
    """Register two itk images with the default rigid map; returns the written ITK .h5 transform (fixed -> moving)."""
    import itk

    parameters = itk.ParameterObject.New()
    rigid = parameters.GetDefaultParameterMap("rigid")
    rigid["AutomaticTransformInitialization"] = ["true"]
    rigid["AutomaticTransformInitializationMethod"] = ["GeometricalCenter"]
    rigid["ITKTransformOutputFileNameExtension"] = ["h5"]
    rigid["WriteResultImage"] = ["false"]
    parameters.AddParameterMap(rigid)
    method = itk.ElastixRegistrationMethod[itk.Image[itk.F, 3], itk.Image[itk.F, 3]].New()
    method.SetFixedImage(fixed)
    method.SetMovingImage(moving)
    method.SetParameterObject(parameters)
    method.SetOutputDirectory(str(output_folder))
    method.SetLogToConsole(False)
    method.UpdateLargestPossibleRegion()
    return Path(output_folder) / "TransformParameters.0.h5"


def ants_default_rigid(fixed_path: str, moving_path: str, output_folder) -> Path:
    """ANTs Rigid with its defaults on two image files; returns the forward transform file (fixed -> moving)."""
    import ants

    output = ants.registration(
        ants.image_read(str(fixed_path)), ants.image_read(str(moving_path)), type_of_transform="Rigid",
        outprefix=str(Path(output_folder) / "ants_"),
    )  # fmt: skip
    return Path(output["fwdtransforms"][0])


def main(fixed_path: str, moving_path: str, output_folder: str) -> None:
    started = time.perf_counter()
    import itk

    itk.ElastixRegistrationMethod[itk.Image[itk.F, 3], itk.Image[itk.F, 3]]
    imported = time.perf_counter()
    fixed, moving = itk.imread(fixed_path, itk.F), itk.imread(moving_path, itk.F)
    read = time.perf_counter()
    elastix_default_rigid(fixed, moving, output_folder)
    done = time.perf_counter()
    print(f"{imported - started:.3f} {read - imported:.3f} {done - read:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
