"""The extended tier: tests that `make test` (and so CI) leaves out and `make test-all` runs, each one a slow run of a
capability that a faster test in `make test` also reaches.

Chosen from a full run's durations on a 2-core machine (session 49: 1510 tests, 3190 s of test time, 27 min on two
workers): tests of 8 s or more, then a few of 6-8 s that another parametrisation of theirs covers, except those that
are the only end-to-end run of a capability in make test (the deformable preset, QA's stability, the cohort, node
geometry, fault injection, ...). make test took 889 s of tests on a clean clone with 65 of them left out (session 50:
75, to make room for the thin slab placed first, test_placed_first.py).
conftest.py marks them ``extended``; an entry whose test function its file no longer holds stops the run, so a
renamed test does not drop out of the list unnoticed. An entry without a parameter id covers every parametrisation."""

from __future__ import annotations

EXTENDED: dict[str, tuple[str, ...]] = {
    "real data: a second measurement of a rule whose generated case runs in make test": (
        "test_without_affine.py::test_the_real_cord_pair_squashed_by_the_affine_stage_is_registered_again_without_it",
        "test_without_affine.py::test_a_deformable_run_whose_affine_stage_collapsed_runs_again_without_it",
        "test_shape_change.py::test_the_real_cord_pair_squashed_by_the_affine_preset_is_warned",
        "test_scale_drift.py::test_the_real_cord_pair_under_similarity_is_warned_for_its_size",
        "test_weak_result.py::test_a_right_result_on_a_small_real_pair_is_not_called_probably_wrong",
    ),
    "the other engine, or another size, angle or axis order, of a case make test runs": (
        "test_anypose.py::test_both_engines_recover_far_starts_below_1_mm[90-ants]",
        "test_anypose.py::test_both_engines_recover_far_starts_below_1_mm[90-elastix]",
        "test_anypose.py::test_small_misalignment_is_as_accurate_as_without_the_initialiser[ants]",
        "test_engines.py::test_initial_transform_is_part_of_the_result[ants]",
        "test_engines.py::test_rigid_recovers_25_degrees_and_31_mm[ants]",  # test_direction's [ants] runs the same
        # test_placed_first's deformable run starts from a rigid result given as its initial transform, and lands
        "test_engines.py::test_initial_transform_is_part_of_the_result[elastix]",
        "test_engines.py::test_a_nonlinear_start_is_part_of_the_result[ants]",
        "test_scale_start.py::test_shrunken_tissue_registers_within_2_mm[13-1.0-False-similarity]",
        "test_scale_start.py::test_shrunken_tissue_registers_within_2_mm[12-0.65-False-affine]",
        "test_scale_start.py::test_shrunken_tissue_registers_within_2_mm[16-1.0-True-affine]",
        "test_register_2d.py::test_a_brain_only_slide_against_a_whole_head_slice_keeps_its_size",
        "test_register_2d.py::test_a_half_section_against_the_whole_slice_starts_on_its_own_half",
        "test_register_2d.py::test_rgb_section_to_mr_slice_within_a_pixel[affine-ants]",
        "test_register_2d.py::test_the_2d_start_search_finds_any_rotation_and_the_scale[170.0-0.7]",
        "test_view_mask.py::test_an_intraoperative_ultrasound_of_the_brain_registers_from_the_headers_or_is_warned",
        "test_stack.py::test_stack_with_an_mr_reference_through_the_command_line[coronal]",
        "test_stack.py::test_stack_with_an_mr_reference_through_the_command_line[x reversed]",
        "test_stack.py::test_stack_with_an_mr_reference_through_the_command_line[axes swapped]",
        "test_stack.py::test_stack_with_an_mr_reference_through_the_command_line[sagittal]",
        "test_stack.py::test_a_mouse_sized_specimen_is_aligned_as_well_as_a_large_one",
        "test_stack.py::test_a_section_scanned_at_twice_the_magnification_is_reported_and_keeps_the_volume_plane",
        "test_field_of_view_cut.py::test_ants_rigid_guided_by_a_cut_brain_lands_under_a_millimetre",
        "test_engine_stages.py::test_ants_deformable_reports_the_collapsed_linear_part_then_syn",
        "test_cohort.py::test_the_same_manifest_on_dask_gives_the_same_transforms_and_verdicts",
        "test_engines.py::test_affine_and_deformable_improve_the_metric[affine-ants]",
        "test_register_2d.py::test_rgb_section_to_mr_slice_within_a_pixel[rigid-ants]",
        "test_slab_probe.py::test_a_thin_fixed_slab_returns_a_better_probed_pose_or_none[25-True]",
        "test_outliers.py::test_a_registration_with_a_hot_voxel_runs_and_lands[1e+30]",
        "test_nodes.py::test_a_rerun_that_fails_late_leaves_the_existing_output_nodes_as_they_were[reading]",
        "test_engines.py::test_elastix_does_not_stall_after_a_nonlinear_start_twenty_degrees_off[1-False]",
        "test_size_check.py::test_the_truth_at_a_wrong_spacing_prefers_that_size[1.15]",
        "test_stack.py::test_a_section_laid_upside_down_on_its_slide_is_found[100.0]",
        "test_register_2d.py::"
        "test_a_one_slice_volume_file_keeps_its_place_in_the_3d_transform[coronal, one slice along y]",
        "test_prep_n4.py::test_n4_on_a_mouse_sized_image_corrects_as_on_a_human_sized_one",
        "test_stack.py::test_sections_scanned_with_other_margins_keep_all_their_tissue_in_the_volume",
        "test_warm_worker.py::test_a_warm_worker_asked_for_an_engine_that_is_not_installed_still_runs_the_other",
    ),
    "a rule's or a path's slow end-to-end run; its parts are tested in make test": (
        "test_without_affine.py::test_a_true_stretch_keeps_its_stretched_result",
        "test_scale_start.py::"
        "test_a_half_stack_whose_first_search_misses_is_found_by_the_searches_that_disagree_with_it",
        "test_scale_start.py::test_a_cleared_hemisphere_starts_on_its_own_half_of_the_head",
        "test_affine_opinion.py::test_a_similarity_result_on_unevenly_shrunk_tissue_is_warned",
        "test_size_check.py::test_a_rigid_run_at_a_wrong_spacing_is_warned_and_similarity_is_not_checked",
        "test_size_check.py::test_qa_of_images_alone_says_when_they_do_not_confirm_the_transform",
        "test_slab_size.py::test_a_skull_base_slab_under_similarity_lands_at_its_size",
        "test_tissue_shape.py::"
        "test_a_light_sheet_brain_with_its_z_spacing_three_times_too_large_is_warned_with_its_axis",
        "test_engines.py::test_a_thin_plate_start_fitted_on_the_fixed_grid_is_registered_from",
        "test_register_2d.py::test_a_slide_much_finer_than_the_slice_is_registered_averaged_down",
        "test_register_2d.py::test_a_shrunken_brain_only_slide_turned_between_the_search_angles_finds_its_scale",
        "test_register_2d.py::test_a_brain_only_slide_with_a_pixel_size_a_third_too_large_is_warned_about_under_rigid",
        "test_register_2d.py::test_the_outputs_keep_the_files_own_origin",
        "test_itk_elastix.py::test_direct_loading_skips_itks_other_modules_and_gives_the_lazy_loaders_transform",
        "test_inside_size.py::test_scaled_unguided_results_are_checked_and_qa_and_triage_count_the_warning",
        "test_other_way.py::test_a_thin_moving_slab_is_registered_the_other_way_round_when_that_agrees_better",
        "test_other_way.py::test_a_colour_slab_is_measured_both_ways_as_registered",
        "test_other_way.py::test_two_ways_that_disagree_are_warned_whichever_is_kept",
        "test_working_scale.py::test_a_guided_run_is_scaled_too_and_its_record_is_in_the_images_own_mm",
        "test_working_scale.py::test_a_cleared_mouse_brain_against_its_mri_registers",
        "test_colour_volumes.py::test_an_rgb_volume_node_registers_in_slicer",
        "test_command.py::test_a_mask_the_preparation_made_is_named_in_the_record",
        "test_qa.py::test_mmreg_qa_names_the_engine_and_preset_its_restarts_ran",
        "test_stack.py::test_signs_of_a_known_motion",
        "test_view_mask.py::test_an_intraoperative_ultrasound_as_the_moving_image_is_registered_the_other_way_round",
        "test_prep.py::test_a_3x_field_of_view_difference_registers_after_prep",
        "test_slab_probe.py::test_no_probe_where_the_user_said_where_to_look",
        "test_piecewise.py::test_blend_of_the_pelvis_truth_puts_every_target_on_its_bone",
        "test_guided_registration.py::test_the_start_and_the_keep_rule_build_one_scorer_and_score_as_two_would",
        # the same stretched start as its 10-degree elastix case, another stretch and turn (37 s)
        "test_register_2d.py::test_a_slide_shrunk_unevenly_is_found_under_affine[elastix-stretch1--60.0]",
        "test_register_2d.py::test_a_slide_shrunk_unevenly_is_found_under_affine[ants-stretch2--60.0]",  # 28 s
    ),
    "session 62, on a machine 1.7 times slower (CI 24 min): a second run of a path another make-test test runs": (
        # test_command.py repeats an elastix result bit for bit from its recorded command
        "test_engines.py::test_engine_repeats_exactly_with_the_same_seed[elastix]",
        # the start search is the engines' shared part: [180-elastix] runs it, test_direction.py[ants] ANTs rigid
        "test_anypose.py::test_both_engines_recover_far_starts_below_1_mm[180-ants]",
        "test_engines.py::test_elastix_does_not_stall_after_a_nonlinear_start_twenty_degrees_off[7-False]",  # [7-True]
        # [segments] runs the same guided start and keep rule with elastix
        "test_guided_registration.py::test_segment_guided_elastix_lands_within_2mm_of_the_truth[intensity]",
        # [rigid-elastix] reads the colour section; the unevenly shrunk slide runs 2D affine under elastix
        "test_register_2d.py::test_rgb_section_to_mr_slice_within_a_pixel[affine-elastix]",
    ),
}


def is_extended(test_id: str, entry: str) -> bool:
    """Whether ``test_id`` (file::name[parameters], relative to Testing/Python) is the test ``entry`` names."""
    return test_id == entry or test_id.startswith(entry + "[")
