"""Each olmo2_lit option (``tests/options_inventory.py``) -> the tests that check the effect of its
non-default value(s), or why no test here can.

``tests/test_options_coverage.py`` fails when an option is missing from this table, when the table names an
option that no longer exists, or when a test it names does not exist; it reports (and counts) the options
still marked :data:`GAP`. docs/testing.md shows this table ("Options and the tests of their effect").

A test is named by its pytest node id without parameters (``file.py::function`` or
``file.py::Class::method``). A test listed here sets the option to a non-default value and asserts what
that value changes (a number computed by hand, a reference implementation's output, the file written),
not only that it parses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tested:
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Untestable:
    reason: str


@dataclass(frozen=True)
class Gap:
    reason: str = "not yet tested"


def tested(*nodes: str) -> Tested:
    return Tested(nodes)


def cannot(reason: str) -> Untestable:
    return Untestable(reason)


GAP = Gap()

# --- test files, for short lines ---------------------------------------------------------------
OPT = "tests/options/"
MODEL_OPTS = OPT + "test_model_options.py"
TRAIN_OPTS = OPT + "test_train_options.py"
DATA_OPTS = OPT + "test_data_options.py"
TOOL_OPTS = OPT + "test_tool_options.py"
CB_OPTS = OPT + "test_callback_options.py"
TOKENIZER_OPTS = OPT + "test_tokenizer_options.py"
EVAL_OPTS = OPT + "test_eval_options.py"
ATT = "tests/model/test_attention.py"
BLOCKS = "tests/model/test_blocks.py"
CONFIG = "tests/model/test_config.py"
INIT = "tests/model/test_init.py"
NORMS = "tests/model/test_norms_rope.py"
GEN = "tests/model/test_generate.py"
FLOPS = "tests/model/test_flops.py"
SCHED = "tests/test_schedules.py"
FSDP_VALUES = "tests/training/test_fsdp_option_values.py"
SCHED_OC = "tests/test_schedules_olmo_core.py"
SKIP = "tests/test_skip_step.py"
OPTIM = "tests/test_optim.py"
FIT = "tests/training/test_fit.py"
PAR = "tests/training/test_parallelize.py"
ADAPTER = "tests/training/test_strategy_adapter.py"
DM = "tests/data/test_datamodule.py"
SAMPLER = "tests/data/test_sampler.py"
ORDER = "tests/data/test_order_parity.py"
ORDER_FILE = "tests/data/test_order_file.py"
PREP = "tests/data/test_prepare.py"
TOOL_ERR = "tests/bad_input/test_tool_errors.py"
RUN_ERR = "tests/bad_input/test_run_errors.py"
HF = "tests/test_convert_hf.py"
SOUP = "tests/test_soup.py"
GEN_CLI = "tests/eval/test_generate_cli.py"
DOWN = "tests/eval/test_downstream.py"
EVAL_CB = "tests/training/test_eval_callbacks.py"
SPIKES = "tests/test_spikes.py"
PG_FIT = (
    OPT + "test_param_groups_fit.py::test_each_group_steps_with_its_own_lr_and_decay_and_keeps_them_on_resume"
)
SKIP_OPTS = TRAIN_OPTS + "::test_skip_step_adamw_non_default_options_equal_olmo_cores"

CUDA = "needs a CUDA GPU (none on the CPU test machines); "

COVERAGE = {
    # --- fit: trainer.strategy (olmo2_lit's strategy classes) ----------------------------------------
    "fit trainer.strategy:DeepSpeedStrategy.stage=3": tested(
        "tests/training/test_deepspeed_fit.py::test_zero3_trains_like_one_process_and_resumes_exactly"
    ),
    "fit trainer.strategy:DeepSpeedStrategy.offload_optimizer": cannot(
        "moves Adam's state from GPU memory to CPU memory; the test ranks are CPU processes whose "
        "tensors are in CPU memory already, so there is no effect to observe here"
    ),
    "fit trainer.strategy:DeepSpeedStrategy.offload_parameters": cannot(
        "moves ZeRO-3's parameters from GPU memory to CPU memory; the test ranks are CPU processes whose "
        "tensors are in CPU memory already, so there is no effect to observe here"
    ),
    "fit trainer.strategy:FSDP2Strategy.save_distributed_checkpoint": tested(
        "tests/training/test_sharded_resume.py::test_ddp_resume_is_bitwise_and_its_file_resumes_under_fsdp2"
    ),
    "fit trainer.strategy:FSDP2Strategy.process_group_backend": tested(
        CB_OPTS + "::test_fsdp2_process_group_backend_is_the_strategys"
    ),
    "fit trainer.strategy:FSDP2Strategy.timeout_minutes": cannot(
        "its only effect is torch.distributed's collective timeout (whole minutes, at least 1): torch has no "
        "public getter for a process group's timeout (only the backend's private options._timeout), and "
        "observing the timeout itself means hanging a collective on two ranks for over a minute, a test "
        "that takes minutes and depends on wall time"
    ),
    "fit trainer.strategy:FSDPStrategy.sharding_strategy=SHARD_GRAD_OP": tested(
        FSDP_VALUES + "::test_fsdp_v1_sharding_strategies_and_reduce_dtype_on_two_ranks"
    ),
    "fit trainer.strategy:FSDPStrategy.sharding_strategy=NO_SHARD": tested(
        FSDP_VALUES + "::test_fsdp_v1_sharding_strategies_and_reduce_dtype_on_two_ranks"
    ),
    "fit trainer.strategy:FSDPStrategy.sharding_strategy=HYBRID_SHARD": tested(
        FSDP_VALUES + "::test_fsdp_v1_sharding_strategies_and_reduce_dtype_on_two_ranks"
    ),
    "fit trainer.strategy:FSDPStrategy.state_dict_type=full": tested(
        "tests/training/test_fsdp_v1_fit.py::"
        "test_one_file_checkpoints_resume_under_fsdp_v1_with_adam_state_on_the_right_parameters"
    ),
    "fit trainer.strategy:FSDPStrategy.param_dtype=float32": tested(
        "tests/training/test_fsdp_v1_fit.py::test_fsdp_v1_trains_like_one_process_and_resumes_its_shards_exactly"
    ),
    "fit trainer.strategy:FSDPStrategy.reduce_dtype=bfloat16": tested(
        FSDP_VALUES + "::test_fsdp_v1_sharding_strategies_and_reduce_dtype_on_two_ranks"
    ),
    "fit trainer.strategy:FSDPStrategy.cpu_offload": cannot(
        "moves parameters and gradients from GPU to CPU memory; the test ranks are CPU processes whose "
        "tensors are in CPU memory already, so there is no effect to observe here"
    ),
    # --- fit: trainer.callbacks (olmo2_lit's callbacks a run adds) -------------------------------------
    "fit trainer.callbacks:BitsPerByte.tokenizer": tested(
        "tests/eval/test_bits_per_byte.py::test_the_table_comes_from_the_tokenizer_the_datamodule_records",
        TOKENIZER_OPTS + "::test_bits_per_byte_counts_the_spaces_a_non_byte_level_tokenizer_drops",
    ),
    "fit trainer.callbacks:Diagnostics.interval": tested(
        "tests/callbacks/test_diagnostics.py::test_diagnostics_in_a_tiny_run",
        CB_OPTS + "::test_merger_every_n_steps_and_dirpath_and_diagnostics_without_attention_logits",
    ),
    "fit trainer.callbacks:Diagnostics.attention_logits": tested(
        CB_OPTS + "::test_merger_every_n_steps_and_dirpath_and_diagnostics_without_attention_logits"
    ),
    "fit trainer.callbacks:DownstreamEval.tasks[].path": tested(
        DOWN + "::test_every_request_and_accuracy_equal_ai2_olmo_eval",
        DOWN + "::test_our_jsonl_format_and_its_errors",
    ),
    "fit trainer.callbacks:DownstreamEval.tasks[].name": tested(
        EVAL_OPTS + "::test_name_and_primary_metric_of_a_task",
        DOWN + "::test_task_limit_in_the_callback_keeps_the_first_questions",
    ),
    "fit trainer.callbacks:DownstreamEval.tasks[].primary_metric": tested(
        EVAL_OPTS + "::test_name_and_primary_metric_of_a_task",
        DOWN + "::test_gold_bits_per_byte_equal_ai2_olmo_eval",
    ),
    "fit trainer.callbacks:DownstreamEval.tasks[].limit": tested(
        DOWN + "::test_task_limit_in_the_callback_keeps_the_first_questions"
    ),
    "fit trainer.callbacks:DownstreamEval.tokenizer": tested(
        EVAL_CB + "::test_downstream_eval_logs_per_task_metrics_in_a_fit"
    ),
    "fit trainer.callbacks:DownstreamEval.every_n_steps": tested(
        EVAL_CB + "::test_downstream_eval_logs_per_task_metrics_in_a_fit"
    ),
    "fit trainer.callbacks:DownstreamEval.batch_size": tested(
        EVAL_CB + "::test_downstream_eval_on_two_ranks_gathers_every_request"
    ),
    "fit trainer.callbacks:DownstreamEval.truncate": tested(
        EVAL_OPTS + "::test_truncate_keeps_the_newest_tokens_and_false_refuses"
    ),
    "fit trainer.callbacks:DownstreamEval.bos_token_id": tested(
        EVAL_OPTS + "::test_bos_token_id_starts_every_context"
    ),
    "fit trainer.callbacks:LRBackoff.spikes": tested(
        "tests/callbacks/test_spike_monitor.py::test_injected_spike_is_detected_skipped_and_backs_off_the_lr"
    ),
    "fit trainer.callbacks:LRBackoff.window": tested(
        "tests/callbacks/test_spike_monitor.py::test_injected_spike_is_detected_skipped_and_backs_off_the_lr"
    ),
    "fit trainer.callbacks:LRBackoff.factor": tested(
        "tests/callbacks/test_spike_monitor.py::test_injected_spike_is_detected_skipped_and_backs_off_the_lr"
    ),
    "fit trainer.callbacks:LRBackoff.duration": tested(
        "tests/callbacks/test_spike_monitor.py::test_injected_spike_is_detected_skipped_and_backs_off_the_lr"
    ),
    "fit trainer.callbacks:LRBackoff.recovery": tested(
        "tests/callbacks/test_spike_monitor.py::test_injected_spike_is_detected_skipped_and_backs_off_the_lr"
    ),
    "fit trainer.callbacks:ModelMerger.merge_steps": tested(
        "tests/training/test_weight_averaging.py::test_merged_weights_are_the_mean_of_the_last_n_steps"
    ),
    "fit trainer.callbacks:ModelMerger.every_n_steps": tested(
        CB_OPTS + "::test_merger_every_n_steps_and_dirpath_and_diagnostics_without_attention_logits"
    ),
    "fit trainer.callbacks:ModelMerger.last_n_steps": tested(
        "tests/training/test_weight_averaging.py::test_merged_weights_are_the_mean_of_the_last_n_steps"
    ),
    "fit trainer.callbacks:ModelMerger.dirpath": tested(
        CB_OPTS + "::test_merger_every_n_steps_and_dirpath_and_diagnostics_without_attention_logits"
    ),
    "fit trainer.callbacks:OLMo2ModelSummary.max_depth": tested(
        CB_OPTS + "::test_model_summary_max_depth_is_the_depth_of_the_table"
    ),
    "fit trainer.callbacks:PrintSamples.prompts": tested(
        GEN_CLI + "::test_print_samples_callback_prints_cached_greedy_generation"
    ),
    "fit trainer.callbacks:PrintSamples.max_new_tokens": tested(
        GEN_CLI + "::test_print_samples_callback_prints_cached_greedy_generation"
    ),
    "fit trainer.callbacks:PrintSamples.temperature": tested(
        GEN_CLI + "::test_print_samples_callback_prints_cached_greedy_generation"
    ),
    "fit trainer.callbacks:PrintSamples.tokenizer": tested(
        GEN_CLI + "::test_print_samples_callback_prints_cached_greedy_generation"
    ),
    "fit trainer.callbacks:Rollback.spikes": tested(
        "tests/callbacks/test_rollback.py::test_rollback_restores_checkpoint_skips_data_and_finishes"
    ),
    "fit trainer.callbacks:Rollback.window": tested(
        "tests/callbacks/test_rollback.py::test_rollback_restores_checkpoint_skips_data_and_finishes"
    ),
    "fit trainer.callbacks:Rollback.record_file": tested(
        CB_OPTS + "::test_rollback_record_file_is_where_each_rollback_is_appended",
        "tests/callbacks/test_rollback.py::test_rollback_restores_checkpoint_skips_data_and_finishes",
    ),
    "fit trainer.callbacks:Rollback.max_rollbacks": tested(
        CB_OPTS + "::test_max_rollbacks_is_how_many_rollbacks_a_run_may_take"
    ),
    "fit trainer.callbacks:SpikeMonitor.window": tested(SPIKES + "::test_threshold_by_hand"),
    "fit trainer.callbacks:SpikeMonitor.sigma": tested(SPIKES + "::test_threshold_by_hand"),
    "fit trainer.callbacks:SpikeMonitor.warmup": tested(SPIKES + "::test_threshold_by_hand"),
    "fit trainer.callbacks:SpikeMonitor.rate_window": tested(
        SPIKES + "::test_matches_olmo_core_stability_monitor"
    ),
    "fit trainer.callbacks:SpikeMonitor.paper_window": tested(SPIKES + "::test_paper_score_by_hand"),
    "fit trainer.callbacks:SpikeMonitor.paper_sigma": tested(SPIKES + "::test_paper_score_by_hand"),
    "fit trainer.callbacks:StepProgressBar.refresh_rate": tested(
        CB_OPTS + "::test_progress_bar_refresh_rate_is_in_optimizer_steps"
    ),
    # --- fit: model.config ---------------------------------------------------------------------------
    "fit model.config.preset": tested(
        CONFIG + "::test_preset_dimensions", CONFIG + "::test_preset_param_counts_are_exact"
    ),
    "fit model.config.d_model": tested(CONFIG + "::test_exact_counts_are_the_hf_configs_counts"),
    "fit model.config.n_layers": tested(CONFIG + "::test_exact_counts_are_the_hf_configs_counts"),
    "fit model.config.n_heads": tested(CONFIG + "::test_exact_counts_are_the_hf_configs_counts"),
    "fit model.config.n_kv_heads": tested(
        ATT + "::test_sdpa_matches_eager", CONFIG + "::test_preset_dimensions"
    ),
    "fit model.config.mlp_hidden": tested(CONFIG + "::test_exact_counts_are_the_hf_configs_counts"),
    "fit model.config.vocab_pad_multiple": tested(
        MODEL_OPTS + "::test_vocab_pad_multiple_sets_the_embedding_and_output_rows"
    ),
    "fit model.config.max_sequence_length": tested(
        GEN + "::test_generation_stops_at_the_context_and_rejects_longer_prompts"
    ),
    "fit model.config.attention=eager": tested(ATT + "::test_sdpa_matches_eager"),
    "fit model.config.attention=flex": tested(ATT + "::test_flex_matches_eager_with_document_masks"),
    "fit model.config.attention=xformers": cannot(
        CUDA + "xformers' kernels are CUDA-only (tests/model/test_attention.py::"
        "test_xformers_matches_sdpa_on_cuda runs on a GPU; on CPU the backend's refusal is tested)"
    ),
    "fit model.config.rope_theta": tested(
        MODEL_OPTS + "::test_rope_theta_and_norm_eps_change_the_logits_as_transformers_does",
        MODEL_OPTS + "::test_rope_theta_sets_the_frequencies",
    ),
    "fit model.config.qk_norm": tested(BLOCKS + "::test_no_qk_norm_ablation"),
    "fit model.config.clip_qkv": tested(BLOCKS + "::test_clip_qkv_clamps_projections"),
    "fit model.config.block=olmo0424": tested(
        BLOCKS + "::test_olmo0424_block_uses_nonparametric_layernorm_and_clipping"
    ),
    "fit model.config.block=pre_norm": tested(BLOCKS + "::test_pre_norm_block_normalizes_sublayer_inputs"),
    "fit model.config.norm=layer_norm": tested(NORMS + "::test_layernorms_match_hand_computation"),
    "fit model.config.norm=layer_norm_no_affine": tested(NORMS + "::test_layernorms_match_hand_computation"),
    "fit model.config.norm_eps": tested(
        MODEL_OPTS + "::test_rope_theta_and_norm_eps_change_the_logits_as_transformers_does"
    ),
    "fit model.config.mlp=gelu": tested(FLOPS + "::test_gelu_mlp_counts_two_matmuls"),
    "fit model.config.init=olmo0424_scaled": tested(INIT + "::test_olmo0424_scaled_init_per_layer"),
    "fit model.config.init_std": tested(MODEL_OPTS + "::test_init_std_and_cutoff_shape_every_weight"),
    "fit model.config.init_cutoff_factor": tested(
        MODEL_OPTS + "::test_init_std_and_cutoff_shape_every_weight"
    ),
    # --- fit: model.optimizer ------------------------------------------------------------------------
    "fit model.optimizer:AdamW.lr": tested(
        TRAIN_OPTS + "::test_adamw_betas_eps_and_weight_decay_are_the_update", PG_FIT
    ),
    "fit model.optimizer:AdamW.betas": tested(
        TRAIN_OPTS + "::test_adamw_betas_eps_and_weight_decay_are_the_update"
    ),
    "fit model.optimizer:AdamW.eps": tested(
        TRAIN_OPTS + "::test_adamw_betas_eps_and_weight_decay_are_the_update"
    ),
    "fit model.optimizer:AdamW.weight_decay": tested(
        TRAIN_OPTS + "::test_adamw_betas_eps_and_weight_decay_are_the_update", PG_FIT
    ),
    "fit model.optimizer:AdamW.fused=True": tested(
        TRAIN_OPTS + "::test_adamw_betas_eps_and_weight_decay_are_the_update"
    ),
    "fit model.optimizer:AdamW.fused=False": tested(
        TRAIN_OPTS + "::test_adamw_betas_eps_and_weight_decay_are_the_update"
    ),
    "fit model.optimizer:SkipStepAdamW.lr": tested(SKIP + "::test_bitwise_parity_with_olmo_core"),
    "fit model.optimizer:SkipStepAdamW.betas": tested(SKIP_OPTS),
    "fit model.optimizer:SkipStepAdamW.eps": tested(SKIP_OPTS),
    "fit model.optimizer:SkipStepAdamW.weight_decay": tested(SKIP_OPTS),
    "fit model.optimizer:SkipStepAdamW.rolling_interval_length": tested(SKIP_OPTS),
    "fit model.optimizer:SkipStepAdamW.sigma_factor": tested(SKIP_OPTS),
    "fit model.optimizer:SkipStepAdamW.dtype": tested(SKIP_OPTS),
    "fit model.optimizer:SkipStepAdamW.foreach": tested(SKIP + "::test_bitwise_parity_with_olmo_core"),
    "fit model.optimizer:SkipStepAdamW.step_increment_bugfix": tested(
        SKIP + "::test_bitwise_parity_with_olmo_core"
    ),
    # --- fit: model.param_groups ---------------------------------------------------------------------
    "fit model.param_groups[].patterns": tested(
        OPTIM + "::test_olmo2_groups_exclude_only_the_embedding_from_decay"
    ),
    "fit model.param_groups[].weight_decay": tested(PG_FIT),
    "fit model.param_groups[].lr_scale": tested(OPTIM + "::test_lr_scale_and_unmatched_pattern", PG_FIT),
    # --- fit: model.schedule -------------------------------------------------------------------------
    "fit model.schedule:Constant.warmup": tested(SCHED + "::test_linear_decay_and_wsd_and_constant"),
    "fit model.schedule:Constant.units=tokens": tested(
        TRAIN_OPTS + "::test_token_units_of_constant_and_wsd_count_tokens_not_steps"
    ),
    "fit model.schedule:CosineWithWarmup.warmup": tested(
        SCHED_OC + "::test_step_unit_schedules_equal_olmo_core"
    ),
    "fit model.schedule:CosineWithWarmup.t_max": tested(
        SCHED_OC + "::test_step_unit_schedules_equal_olmo_core"
    ),
    "fit model.schedule:CosineWithWarmup.alpha_f": tested(
        SCHED + "::test_olmo2_7b_cosine_reaches_stage2_start_lr"
    ),
    "fit model.schedule:CosineWithWarmup.units=tokens": tested(
        SCHED_OC + "::test_cosine_in_tokens_equals_olmo_core"
    ),
    "fit model.schedule:LinearDecay.t_max": tested(SCHED + "::test_linear_decay_and_wsd_and_constant"),
    "fit model.schedule:LinearDecay.warmup": tested(SCHED_OC + "::test_step_unit_schedules_equal_olmo_core"),
    "fit model.schedule:LinearDecay.alpha_f": tested(TRAIN_OPTS + "::test_linear_decay_alpha_f_is_the_floor"),
    "fit model.schedule:LinearDecay.units=tokens": tested(
        SCHED + "::test_scheduled_lr_counts_tokens_and_survives_batch_change",
        SCHED_OC + "::test_stage2_linear_decay_in_tokens_equals_olmo_core",
    ),
    "fit model.schedule:WarmupStableDecay.warmup": tested(SCHED + "::test_linear_decay_and_wsd_and_constant"),
    "fit model.schedule:WarmupStableDecay.decay": tested(SCHED + "::test_linear_decay_and_wsd_and_constant"),
    "fit model.schedule:WarmupStableDecay.t_max": tested(SCHED + "::test_linear_decay_and_wsd_and_constant"),
    "fit model.schedule:WarmupStableDecay.alpha_f": tested(
        SCHED + "::test_linear_decay_and_wsd_and_constant"
    ),
    "fit model.schedule:WarmupStableDecay.units=tokens": tested(
        TRAIN_OPTS + "::test_token_units_of_constant_and_wsd_count_tokens_not_steps"
    ),
    # --- fit: model ----------------------------------------------------------------------------------
    "fit model.z_loss_multiplier": tested(
        "tests/training/test_training_step.py::test_one_step_matches_hand_computed_loss_z_loss_and_clipping"
    ),
    "fit model.init_from": tested(
        FIT + "::test_stage2_starts_from_checkpoint_weights_and_lr_with_fresh_data"
    ),
    "fit model.init_optimizer_state": tested(
        FIT + "::test_stage2_keeps_the_optimizer_state_unless_told_not_to"
    ),
    "fit model.lr_from_checkpoint": tested(
        FIT + "::test_stage2_starts_from_checkpoint_weights_and_lr_with_fresh_data"
    ),
    # --- fit: model.parallelize ----------------------------------------------------------------------
    "fit model.parallelize.activation_checkpointing": tested(
        TRAIN_OPTS + "::test_activation_checkpointing_recomputes_each_block_in_the_backward",
        "tests/test_lit_module.py::test_activation_checkpointing_gives_the_same_loss_and_gradients",
    ),
    "fit model.parallelize.compile=True": tested(
        PAR + "::test_compile_auto_stays_eager_on_cpu_and_true_compiles",
        "tests/test_lit_module.py::test_compile_per_block_matches_eager",
    ),
    "fit model.parallelize.compile=False": cannot(
        CUDA + "false differs from the default auto only on CUDA, where auto compiles "
        "(tests/training/test_parallelize.py::test_compile_auto_compiles_each_block_on_cuda); "
        "on CPU both are eager"
    ),
    "fit model.parallelize.float8=tensorwise": tested(
        PAR + "::test_float8_converts_the_blocks_linear_layers_only",
        "tests/training/test_float8_fit.py::test_float8_follows_bf16_for_20_steps_and_resumes_exactly",
    ),
    "fit model.parallelize.float8=rowwise": tested(TRAIN_OPTS + "::test_float8_recipe_is_torchaos_recipe"),
    "fit model.parallelize.float8=rowwise_with_gw_hp": tested(
        TRAIN_OPTS + "::test_float8_recipe_is_torchaos_recipe"
    ),
    "fit model.parallelize.float8_emulate": tested(
        "tests/training/test_float8_fit.py::test_float8_follows_bf16_for_20_steps_and_resumes_exactly"
    ),
    "fit model.parallelize.fsdp_param_dtype=float32": tested(
        FSDP_VALUES + "::test_fsdp2_param_and_reduce_dtypes_on_two_ranks"
    ),
    "fit model.parallelize.fsdp_param_dtype=bfloat16": tested(
        "tests/training/test_fsdp2_mixed_precision.py::"
        "test_fsdp2_on_one_device_computes_in_bf16_and_keeps_fp32_weights_and_grads",
        FSDP_VALUES + "::test_fsdp2_param_and_reduce_dtypes_on_two_ranks",
    ),
    "fit model.parallelize.fsdp_reduce_dtype=float32": tested(
        FSDP_VALUES + "::test_fsdp2_param_and_reduce_dtypes_on_two_ranks"
    ),
    "fit model.parallelize.fsdp_reduce_dtype=bfloat16": tested(
        FSDP_VALUES + "::test_fsdp2_param_and_reduce_dtypes_on_two_ranks"
    ),
    # --- fit: data -----------------------------------------------------------------------------------
    "fit data.vocab_size": tested(
        "tests/data/test_shards.py::test_dtype_rule_is_the_smallest_uint_holding_vocab_minus_one",
        DATA_OPTS + "::test_raw_shards_are_read_in_the_dtype_given",
        "tests/bad_input/test_data_errors.py::test_bad_shard_fails_at_open_naming_it",
    ),
    "fit data.train_sources[].paths": tested(DM + "::test_batch_index_leads_back_to_the_tokens_on_disk"),
    "fit data.train_sources[].weight": tested(
        SAMPLER + "::test_mixture_counts_follow_the_weights_and_sum_to_the_epoch"
    ),
    "fit data.train_sources[].name": tested(DATA_OPTS + "::test_a_source_name_labels_its_errors_and_summary"),
    "fit data.val_paths": tested(
        "tests/eval/test_bits_per_byte.py::test_validation_logs_bpb_equal_to_a_hand_computation"
    ),
    "fit data.test_paths": tested(FIT + "::test_validate_test_and_predict_verbs_on_a_checkpoint"),
    "fit data.sequence_length": tested(
        "tests/data/test_instances.py::test_instances_are_cut_per_shard_and_each_remainder_is_dropped"
    ),
    "fit data.global_batch_size": tested(
        DM + "::test_changed_global_batch_size_on_resume_continues_at_the_same_token"
    ),
    "fit data.micro_batch_size": tested(
        "tests/training/test_ddp_fit.py::test_resume_on_another_world_size_and_micro_batch"
    ),
    "fit data.val_batch_size": tested(DATA_OPTS + "::test_val_batch_size_sets_the_held_out_batches"),
    "fit data.seed": tested(
        SAMPLER + "::test_single_source_order_is_olmos_pcg64_seed_plus_epoch_permutation"
    ),
    "fit data.order=olmo_core": tested(
        ORDER + "::test_olmo_core_order_equals_olmo_cores_loader_on_every_rank"
    ),
    "fit data.max_target_sequence_length": tested(
        ORDER + "::test_olmo_core_order_equals_olmo_cores_loader_on_every_rank"
    ),
    "fit data.order_dir": tested(DATA_OPTS + "::test_order_dir_holds_the_epoch_order_file"),
    "fit data.num_workers": tested(DM + "::test_worker_count_does_not_change_the_batch_sequence"),
    "fit data.dtype=uint8": tested(DATA_OPTS + "::test_raw_shards_are_read_in_the_dtype_given"),
    "fit data.dtype=uint16": tested(DATA_OPTS + "::test_raw_shards_are_read_in_the_dtype_given"),
    "fit data.dtype=uint32": tested(
        DATA_OPTS + "::test_raw_shards_are_read_in_the_dtype_given",
        "tests/data/test_shards.py::test_foreign_raw_uint32_file_reads_given_the_dtype",
    ),
    "fit data.dtype=uint64": tested(DATA_OPTS + "::test_raw_shards_are_read_in_the_dtype_given"),
    "fit data.eos_token_id": tested(DM + "::test_foreign_shards_need_the_eos_id_for_document_masking"),
    "fit data.document_masking": tested(
        "tests/data/test_document_masking.py::test_packed_logits_equal_each_document_run_alone"
    ),
    "fit data.instance_filter": tested(
        "tests/data/test_instances.py::test_instance_filter_masks_all_labels_of_repetitive_instances"
    ),
    "fit data.ignore_fingerprint_mismatch": tested(
        DM + "::test_fingerprint_mismatch_names_the_shard_unless_ignored"
    ),
    "fit data.prepare_if_missing.output_dir": tested(DM + "::test_prepare_if_missing_builds_shards_once"),
    "fit data.prepare_if_missing.inputs": tested(
        DATA_OPTS + "::test_prepare_if_missing_fields_reach_prepare"
    ),
    "fit data.prepare_if_missing.tokenizer": tested(
        DATA_OPTS + "::test_prepare_if_missing_fields_reach_prepare"
    ),
    "fit data.prepare_if_missing.max_input_bytes": tested(
        DM + "::test_prepare_if_missing_builds_shards_once"
    ),
    "fit data.prepare_if_missing.val_fraction": tested(
        DATA_OPTS + "::test_prepare_if_missing_fields_reach_prepare"
    ),
    "fit data.prepare_if_missing.seed": tested(DATA_OPTS + "::test_prepare_if_missing_fields_reach_prepare"),
    "fit data.pin_memory": tested(DATA_OPTS + "::test_pin_memory_reaches_every_dataloader"),
    # --- fit: callbacks under their own key ----------------------------------------------------------
    "fit throughput.window": tested(
        CB_OPTS + "::test_throughput_window_is_the_steps_the_rate_is_averaged_over"
    ),
    "fit throughput.peak_flops_per_device": tested(FIT + "::test_tensorboard_event_files_hold_every_metric"),
    "fit preemption.enabled": tested(CB_OPTS + "::test_preemption_disabled_leaves_the_signal_handlers_alone"),
    "fit housekeeping.remove_stale_temps": tested(
        RUN_ERR + "::test_stale_temp_files_of_a_killed_save_are_removed_and_nothing_else"
    ),
    "fit housekeeping.remove_empty_log_dir": tested(
        CB_OPTS + "::test_remove_empty_log_dir_decides_whether_a_failed_runs_log_dir_stays"
    ),
    "fit predictions.path": tested(RUN_ERR + "::test_predict_writes_its_predictions_to_a_named_file"),
    "fit predictions.tokenizer": tested(CB_OPTS + "::test_predictions_tokenizer_adds_the_decoded_text"),
    "fit nonfinite.action=skip": tested(
        "tests/callbacks/test_nonfinite_guard.py::test_skip_leaves_weights_and_moments_and_training_goes_on"
    ),
    "fit nonfinite.max_skips": tested(CB_OPTS + "::test_max_skips_stops_at_the_skip_past_it"),
    # --- prepare -------------------------------------------------------------------------------------
    "prepare inputs": tested(PREP + "::test_prepared_shards_decode_back_to_the_input_documents"),
    "prepare output_dir": tested(PREP + "::test_prepared_shards_decode_back_to_the_input_documents"),
    "prepare tokenizer": tested(
        TOKENIZER_OPTS + "::test_prepare_with_a_sentencepiece_style_tokenizer_writes_its_ids_and_eos"
    ),
    "prepare vocab_size": tested(
        TOKENIZER_OPTS + "::test_prepare_with_a_sentencepiece_style_tokenizer_writes_its_ids_and_eos",
        PREP + "::test_prepared_shards_decode_back_to_the_input_documents",
    ),
    "prepare eos_token": tested(
        TOKENIZER_OPTS + "::test_prepare_with_a_sentencepiece_style_tokenizer_writes_its_ids_and_eos"
    ),
    "prepare text_field": tested(TOOL_OPTS + "::test_prepare_text_field_shard_size_and_progress"),
    "prepare encoding_errors=replace": tested(
        TOOL_ERR + "::test_encoding_errors_replace_is_the_documented_switch"
    ),
    "prepare val_fraction": tested(
        PREP + "::test_split_is_by_document_and_output_does_not_depend_on_worker_count"
    ),
    "prepare ngram_filter": tested(
        PREP + "::test_ngram_filter_removes_repetitive_documents_and_reports_counts"
    ),
    "prepare num_workers": tested(
        PREP + "::test_split_is_by_document_and_output_does_not_depend_on_worker_count"
    ),
    "prepare shard_size_tokens": tested(TOOL_OPTS + "::test_prepare_text_field_shard_size_and_progress"),
    "prepare max_input_bytes": tested(TOOL_OPTS + "::test_prepare_max_input_bytes_seed_and_bpe_train_bytes"),
    "prepare bpe_train_bytes": tested(TOOL_OPTS + "::test_prepare_max_input_bytes_seed_and_bpe_train_bytes"),
    "prepare seed": tested(TOOL_OPTS + "::test_prepare_max_input_bytes_seed_and_bpe_train_bytes"),
    "prepare overwrite": tested(TOOL_ERR + "::test_overwrite_replaces_only_its_own_files"),
    "prepare progress": tested(TOOL_OPTS + "::test_prepare_text_field_shard_size_and_progress"),
    # --- convert -------------------------------------------------------------------------------------
    "convert from-hf hf_dir": tested(HF + "::test_to_hf_from_ckpt_and_from_hf_cli_verbs"),
    "convert from-hf out_dir": tested(HF + "::test_to_hf_from_ckpt_and_from_hf_cli_verbs"),
    "convert from-hf dtype=bfloat16": tested(TOOL_OPTS + "::test_from_hf_dtype"),
    "convert from-hf dtype=float16": tested(TOOL_OPTS + "::test_from_hf_dtype"),
    "convert to-hf checkpoint": tested(HF + "::test_to_hf_from_ckpt_and_from_hf_cli_verbs"),
    "convert to-hf out_dir": tested(HF + "::test_to_hf_from_ckpt_and_from_hf_cli_verbs"),
    "convert to-hf dtype=float32": tested(TOOL_OPTS + "::test_to_hf_dtype_and_pad_token_id"),
    "convert to-hf dtype=float16": tested(TOOL_OPTS + "::test_to_hf_dtype_and_pad_token_id"),
    "convert to-hf tokenizer_json": tested(HF + "::test_tokenizer_json_is_copied"),
    "convert to-hf eos_token_id": tested(RUN_ERR + "::test_to_hf_uses_the_training_data_eos"),
    "convert to-hf pad_token_id": tested(TOOL_OPTS + "::test_to_hf_dtype_and_pad_token_id"),
    "convert to-hf max_shard_size": tested(HF + "::test_sharded_export_imports"),
    "convert consolidate checkpoint": tested(
        "tests/training/test_sharded_resume.py::"
        "test_fsdp2_sharded_checkpoint_resumes_exactly_on_other_world_sizes_and_after_consolidation"
    ),
    "convert consolidate out": tested(
        "tests/training/test_sharded_resume.py::"
        "test_fsdp2_sharded_checkpoint_resumes_exactly_on_other_world_sizes_and_after_consolidation"
    ),
    "convert from-olmo-core step_dir": tested(
        "tests/training/test_olmo_core_convert.py::test_olmo_core_checkpoint_continues_here_and_back"
    ),
    "convert from-olmo-core out": tested(
        "tests/training/test_olmo_core_convert.py::test_olmo_core_checkpoint_continues_here_and_back"
    ),
    "convert from-olmo-core preset": tested(
        "tests/training/test_olmo_core_refusals.py::test_architecture_refused_naming_field_and_values"
    ),
    "convert from-olmo-core n_heads": tested(
        TOOL_OPTS + "::test_from_olmo_core_vocab_size_is_the_config_vocab",
        "tests/training/test_olmo_core_convert.py::test_olmo_core_checkpoint_continues_here_and_back",
    ),
    "convert from-olmo-core vocab_size": tested(
        TOOL_OPTS + "::test_from_olmo_core_vocab_size_is_the_config_vocab"
    ),
    "convert from-olmo-trainer checkpoint_dir": tested(
        "tests/training/test_olmo_trainer_convert.py::test_olmo_trainer_checkpoint_continues_here"
    ),
    "convert from-olmo-trainer out": tested(
        "tests/training/test_olmo_trainer_convert.py::test_olmo_trainer_checkpoint_continues_here"
    ),
    "convert from-olmo-trainer preset": tested(
        "tests/training/test_olmo_trainer_refusals.py::test_architecture_refused_against_a_preset"
    ),
    "convert to-olmo-core checkpoint": tested(
        "tests/training/test_olmo_core_convert.py::test_olmo_core_checkpoint_continues_here_and_back"
    ),
    "convert to-olmo-core out": tested(
        "tests/training/test_olmo_core_convert.py::test_olmo_core_checkpoint_continues_here_and_back"
    ),
    "convert to-olmo-core dtype": tested(
        "tests/training/test_olmo_core_convert.py::test_olmo_core_checkpoint_continues_here_and_back"
    ),
    "convert to-olmo-core pad_token_id": tested(
        TOOL_OPTS + "::test_to_olmo_core_pad_token_id_is_in_the_fingerprint_olmo_core_checks"
    ),
    # --- generate ------------------------------------------------------------------------------------
    "generate checkpoint": tested(GEN_CLI + "::test_generate_native_dir_prints_the_greedy_continuation"),
    "generate prompt": tested(GEN_CLI + "::test_generate_native_dir_prints_the_greedy_continuation"),
    "generate prompt_file": tested(GEN_CLI + "::test_generate_native_dir_prints_the_greedy_continuation"),
    "generate tokenizer": tested(TOOL_OPTS + "::test_generate_tokenizer_overrides_the_checkpoints_own"),
    "generate max_new_tokens": tested(GEN_CLI + "::test_generate_native_dir_prints_the_greedy_continuation"),
    "generate temperature": tested(TOOL_OPTS + "::test_sampling_options_change_the_continuation"),
    "generate top_k": tested(TOOL_OPTS + "::test_sampling_options_change_the_continuation"),
    "generate top_p": tested(TOOL_OPTS + "::test_sampling_options_change_the_continuation"),
    "generate seed": tested(TOOL_OPTS + "::test_sampling_options_change_the_continuation"),
    "generate eos_token": tested(TOOL_OPTS + "::test_eos_token_ends_the_continuation_at_that_token"),
    "generate stop": tested(GEN_CLI + "::test_stop_text_ends_each_prompt_where_its_tokens_are_produced"),
    "generate device": cannot(CUDA + "the only other device is cuda"),
    "generate dtype": tested(TOOL_OPTS + "::test_dtype_runs_the_model_in_that_dtype"),
    # --- soup ----------------------------------------------------------------------------------------
    "soup checkpoints": tested(SOUP + "::test_soup_of_two_is_their_exact_average"),
    "soup out": tested(SOUP + "::test_soup_of_two_is_their_exact_average"),
    "soup weights": tested(SOUP + "::test_weighted_soup_of_three_including_an_hf_dir"),
    "soup dtype=float32": tested(TOOL_OPTS + "::test_soup_of_bf16_inputs_rounds_once_to_the_dtype_asked"),
    "soup dtype=bfloat16": tested(TOOL_OPTS + "::test_soup_of_bf16_inputs_rounds_once_to_the_dtype_asked"),
    "soup dtype=float16": tested(TOOL_OPTS + "::test_soup_of_bf16_inputs_rounds_once_to_the_dtype_asked"),
}
