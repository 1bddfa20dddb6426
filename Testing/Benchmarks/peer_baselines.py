"""The peers' defaults, run as a user of each tool would: the reference rows of the benchmarks.

* itk-elastix's default rigid parameter map with geometrical-centre initialisation (what
  SlicerElastix's rigid preset does);
* ants.registration(type_of_transform="Rigid") with its default initialisation;
* Greedy (picsl-greedy, a fast C++ tool) with its documented rigid recipe: normalised mutual
  information, image-centre initialisation, 100 x 50 x 10 iterations over three levels.

Run as a script to time a baseline in a fresh process (import, read, register):
    python peer_baselines.py elastix|greedy fixed.nrrd moving.nrrd output_folder
It prints "import_s read_s register_s" and writes output_folder/TransformParameters.0.h5 (elastix) or
output_folder/greedy_dof6.mat (Greedy).
"""

from __future__ import annotations

import os
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


def greedy_rigid(fixed_path, moving_path, output_folder, threads: int | None = None, dof: int = 6) -> Path:
    """Greedy's rigid recipe (``dof`` 12: its affine recipe) on two image files (paths without spaces: Greedy
    splits its command on them); returns the written matrix file: 4 x 4, RAS, fixed -> moving (read it with
    Transform.from_matrix_ras). Greedy reads the files itself, so its read time is inside."""
    from picsl_greedy import Greedy3D

    output = Path(output_folder) / f"greedy_dof{dof}.mat"
    command = f"-d 3 -a -dof {dof} -i {fixed_path} {moving_path} -o {output} -ia-image-centers -m NMI -n 100x50x10"
    sys.stdout.flush()
    stdout = os.dup(1)
    try:
        silent = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(silent, 1)  # Greedy prints every iteration (C++ stdout), into the benchmark's tables otherwise
            Greedy3D().execute(command + (f" -threads {threads}" if threads else ""))
        finally:
            os.dup2(stdout, 1)
            os.close(silent)
    finally:
        os.close(stdout)
    return output


def main(peer: str, fixed_path: str, moving_path: str, output_folder: str) -> None:
    started = time.perf_counter()
    if peer == "greedy":
        import picsl_greedy  # noqa: F401

        imported = time.perf_counter()
        greedy_rigid(fixed_path, moving_path, output_folder)
        print(f"{imported - started:.3f} 0.000 {time.perf_counter() - imported:.3f}")
        return
    import itk

    itk.ElastixRegistrationMethod[itk.Image[itk.F, 3], itk.Image[itk.F, 3]]
    imported = time.perf_counter()
    fixed, moving = itk.imread(fixed_path, itk.F), itk.imread(moving_path, itk.F)
    read = time.perf_counter()
    elastix_default_rigid(fixed, moving, output_folder)
    done = time.perf_counter()
    print(f"{imported - started:.3f} {read - imported:.3f} {done - read:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
