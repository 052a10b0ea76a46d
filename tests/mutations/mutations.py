"""Small deliberate bugs that the test suite must catch, one at a time (run by ``run_mutations.py``).

Each entry names a bug, the file, the exact source snippet it replaces (it must occur exactly once, so a
refactor that moves the code makes the check fail until the entry is updated) and the tests that must
fail with it. Tests are pytest node ids relative to the repository root; pick fast, focused ones.
The first fifteen are the bugs of issue 14's table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, kw_only=True)
class Mutation:
    name: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]


TRAINING_STEP = "tests/training/test_training_step.py"

MUTATIONS = [
    # --- issue 14's table ------------------------------------------------------------------------
    Mutation(
        name="gradient clipping removed",
        file="olmo2_lit/train/strategies.py",
        original="clip_grads_(model.parameters(), max_norm, norm)",
        replacement="pass",
        tests=(TRAINING_STEP,),
    ),
    Mutation(
        name="clipping threshold hard-coded to 1.0",
        file="olmo2_lit/train/strategies.py",
        original="clip_grads_(model.parameters(), max_norm, norm)",
        replacement="clip_grads_(model.parameters(), 1.0, norm)",
        tests=(TRAINING_STEP,),
    ),
    Mutation(
        name="clip_qkv ignored in attention",
        file="olmo2_lit/model/attention.py",
        original="if self.clip_qkv is not None:",
        replacement="if False:",
        tests=("tests/model/test_blocks.py::test_clip_qkv_clamps_projections",),
    ),
    Mutation(
        name="z-loss multiplier applied twice in training_step",
        file="olmo2_lit/train/lit_module.py",
        original="        self._sums.add(ce_sum, z_sum,",
        replacement="        z_sum = z_sum * self.z_loss_multiplier\n        self._sums.add(ce_sum, z_sum,",
        tests=(TRAINING_STEP,),
    ),
    Mutation(
        name="z-loss multiplier applied twice in the returned loss only",
        file="olmo2_lit/train/lit_module.py",
        original="return (ce_sum + z_sum) * self.adapter",
        replacement="return (ce_sum + z_sum * self.z_loss_multiplier) * self.adapter",
        tests=(TRAINING_STEP,),
    ),
    Mutation(
        name="instance filter threshold 31 inside make_batch",
        file="olmo2_lit/data/instances.py",
        original="flag_repetitive(list(tokens))",
        replacement="flag_repetitive(list(tokens), min_repeats=31)",
        tests=("tests/data/test_instances.py",),
    ),
    Mutation(
        name="scaled init without its factor 2",
        file="olmo2_lit/model/init.py",
        original="std = 1 / math.sqrt(2 * fan_in * (block.layer_idx + 1))",
        replacement="std = 1 / math.sqrt(fan_in * (block.layer_idx + 1))",
        tests=("tests/model/test_init.py",),
    ),
    Mutation(
        name="RMSNorm eps dropped",
        file="olmo2_lit/model/norms.py",
        original="h.pow(2).mean(-1, keepdim=True) + self.eps",
        replacement="h.pow(2).mean(-1, keepdim=True)",
        tests=("tests/model/test_norms_rope.py",),
    ),
    Mutation(
        name="RoPE theta x1.1",
        file="olmo2_lit/model/rope.py",
        original="inv_freq = 1.0 / (self.theta**exponent)",
        replacement="inv_freq = 1.0 / ((self.theta * 1.1) ** exponent)",
        tests=("tests/model/test_norms_rope.py",),
    ),
    Mutation(
        name="weight decay on the embedding",
        file="olmo2_lit/train/optim.py",
        original='ParamGroup(patterns=["embeddings.weight"], weight_decay=0.0)',
        replacement='ParamGroup(patterns=["embeddings.weight"], weight_decay=0.1)',
        tests=("tests/test_optim.py",),
    ),
    Mutation(
        name="shuffle seed + 1",
        file="olmo2_lit/data/sampler.py",
        original="np.random.PCG64(seed + epoch)",
        replacement="np.random.PCG64(seed + epoch + 1)",
        tests=("tests/data/test_sampler.py",),
    ),
    Mutation(
        name="last partial instance of a shard kept",
        file="olmo2_lit/data/instances.py",
        original="return num_tokens // block * chunk_size(sequence_length, max_target_sequence_length)",
        replacement=(
            "return -(-num_tokens // block) * chunk_size(sequence_length, max_target_sequence_length)"
        ),
        tests=("tests/data/test_instances.py",),
    ),
    Mutation(
        name="warmup one step longer",
        file="olmo2_lit/train/schedules.py",
        original="warmup: float) -> float:\n        return t / warmup",
        replacement="warmup: float) -> float:\n        return t / (warmup + 1)",
        tests=("tests/test_schedules.py",),
    ),
    Mutation(
        name="resume position off by one micro-batch",
        file="olmo2_lit/data/resume.py",
        original='return state["epoch"], aligned, state["total_tokens"]',
        replacement='return state["epoch"], aligned + step, state["total_tokens"]',
        tests=(
            "tests/data/test_datamodule.py::test_changed_global_batch_size_on_resume_continues_at_the_same_token",
        ),
    ),
    Mutation(
        name="n-gram threshold 31 in ngram.py",
        file="olmo2_lit/ngram.py",
        original="MIN_REPEATS = 32",
        replacement="MIN_REPEATS = 31",
        tests=("tests/test_ngram.py",),
    ),
    # --- model ------------------------------------------------------------------------------------
    Mutation(
        name="reordered-norm block normalizes the residual stream",
        file="olmo2_lit/model/blocks.py",
        original="return h + self.feed_forward_norm(self.feed_forward(h))",
        replacement="return self.feed_forward_norm(h + self.feed_forward(h))",
        tests=("tests/model/test_blocks.py::test_reordered_norm_block_normalizes_sublayer_outputs",),
    ),
    Mutation(
        name="SwiGLU gate on the up projection",
        file="olmo2_lit/model/feed_forward.py",
        original="return self.w2(F.silu(self.w1(x)) * self.w3(x))",
        replacement="return self.w2(self.w1(x) * F.silu(self.w3(x)))",
        tests=("tests/test_hf_parity.py::test_loss_matches_transformers",),
    ),
    Mutation(
        name="RoPE rotates the wrong half",
        file="olmo2_lit/model/rope.py",
        original="rotated = torch.cat((-x2, x1), dim=-1)",
        replacement="rotated = torch.cat((x2, -x1), dim=-1)",
        tests=("tests/model/test_norms_rope.py",),
    ),
    Mutation(
        name="OLMo 2 init ignores the truncation",
        file="olmo2_lit/model/init.py",
        original="a=-cutoff_factor * std, b=cutoff_factor * std",
        replacement="a=-10 * std, b=10 * std",
        tests=("tests/model/test_init.py",),
    ),
    # --- loss -------------------------------------------------------------------------------------
    Mutation(
        name="z-loss without the square",
        file="olmo2_lit/train/loss.py",
        original="(lse.pow(2) * (labels != IGNORE_INDEX)).sum()",
        replacement="(lse.abs() * (labels != IGNORE_INDEX)).sum()",
        tests=("tests/test_loss.py",),
    ),
    Mutation(
        name="loss divided by every position, not the target tokens",
        file="olmo2_lit/train/loss.py",
        original="return plan.global_batch * (plan.sequence_length - 1)",
        replacement="return plan.global_batch * plan.sequence_length",
        tests=(TRAINING_STEP,),
    ),
    # --- optimizer --------------------------------------------------------------------------------
    Mutation(
        name="AdamW beta2 0.999",
        file="olmo2_lit/train/optim.py",
        original="betas: tuple[float, float] = (0.9, 0.95),",
        replacement="betas: tuple[float, float] = (0.9, 0.999),",
        tests=("tests/test_optim.py",),
    ),
    Mutation(
        name="per-group LR scale ignored",
        file="olmo2_lit/train/optim.py",
        original='group["lr"] = group["lr"] * group.get("lr_scale", 1.0)',
        replacement='group["lr"] = group["lr"]',
        tests=("tests/test_optim.py",),
    ),
    # --- schedules --------------------------------------------------------------------------------
    Mutation(
        name="cosine ignores its final LR fraction",
        file="olmo2_lit/train/schedules.py",
        original="return self.alpha_f + (1 - self.alpha_f) * self._decay(progress)",
        replacement="return self._decay(progress)",
        tests=("tests/test_schedules.py",),
    ),
    Mutation(
        name="LR of step k taken at k - 1",
        file="olmo2_lit/train/schedules.py",
        original="return float(self.last_epoch + 1)",
        replacement="return float(self.last_epoch)",
        tests=("tests/test_schedules_olmo_core.py",),
    ),
    Mutation(
        name="token schedule leaves out the step being taken",
        file="olmo2_lit/train/schedules.py",
        original="return float(self.tokens_seen() + self.tokens_per_step)",
        replacement="return float(self.tokens_seen())",
        tests=("tests/test_schedules.py",),
    ),
    # --- data -------------------------------------------------------------------------------------
    Mutation(
        name="labels not shifted",
        file="olmo2_lit/data/instances.py",
        original="labels[:, :-1] = tokens[:, 1:]",
        replacement="labels[:, :-1] = tokens[:, :-1]",
        tests=("tests/data/test_instances.py",),
    ),
    Mutation(
        name="document boundary before the EOS instead of after",
        file="olmo2_lit/data/instances.py",
        original="ends = np.flatnonzero(row == eos_token_id) + 1",
        replacement="ends = np.flatnonzero(row == eos_token_id)",
        tests=("tests/data/test_instances.py",),
    ),
    Mutation(
        name="ranks take contiguous halves of the global batch",
        file="olmo2_lit/data/sampler.py",
        original="mine = np.asarray(order[b * global_batch : (b + 1) * global_batch])[rank::world_size]",
        replacement=(
            "mine = np.asarray(order[b * global_batch : (b + 1) * global_batch])"
            "[rank * (global_batch // world_size):(rank + 1) * (global_batch // world_size)]"
        ),
        tests=("tests/data/test_sampler.py",),
    ),
    Mutation(
        name="epoch keeps its partial last global batch",
        file="olmo2_lit/data/sampler.py",
        original="return epoch_size // global_batch * global_batch",
        replacement="return epoch_size",
        tests=("tests/data/test_sampler.py",),
    ),
    Mutation(
        name="skip_tokens not rounded up to a micro-step of every rank",
        file="olmo2_lit/data/position.py",
        original="self.advance(math.ceil(tokens / self.plan.sequence_length / step) * step)",
        replacement="self.advance(tokens // self.plan.sequence_length)",
        tests=("tests/data/test_position.py",),
    ),
    Mutation(
        name="a tokenizer.json beside the shards used without checking its sha256",
        file="olmo2_lit/shard_format/identity.py",
        original="and tokenizer_sha256(load_tokenizer(str(candidate))) == meta.tokenizer_sha256:",
        replacement=":",
        tests=("tests/shard_format/test_identity.py",),
    ),
    # --- checkpoints ------------------------------------------------------------------------------
    Mutation(
        name="checkpoint model-config check skipped",
        file="olmo2_lit/train/checkpoint_state.py",
        original="        if saved.get(k) != now.get(k)\n",
        replacement="        if False\n",
        tests=("tests/training/test_resume.py::test_resume_with_another_model_config_names_the_field",),
    ),
    Mutation(
        name="checkpoint data position saved in instances, not tokens",
        file="olmo2_lit/data/position.py",
        original='"tokens": self.position.instances * self.plan.sequence_length,',
        replacement='"tokens": self.position.instances,',
        tests=(
            "tests/data/test_datamodule.py::test_changed_global_batch_size_on_resume_continues_at_the_same_token",
        ),
    ),
    Mutation(
        name="stage 2 starts from the LR after the last step",
        file="olmo2_lit/train/checkpoint_state.py",
        original='end_lr = ckpt.get("olmo2_lit", {}).get("step_lr") or float(',
        replacement="end_lr = None or float(",
        tests=(
            "tests/training/test_fit.py::test_stage2_starts_from_checkpoint_weights_and_lr_with_fresh_data",
        ),
    ),
    # --- conversion -------------------------------------------------------------------------------
    Mutation(
        name="HF gate and up projections swapped",
        file="olmo2_lit/weights/convert_hf.py",
        original=(
            '("blocks.{i}.feed_forward.w1.weight", "model.layers.{i}.mlp.gate_proj.weight"),\n'
            '    ("blocks.{i}.feed_forward.w3.weight", "model.layers.{i}.mlp.up_proj.weight"),'
        ),
        replacement=(
            '("blocks.{i}.feed_forward.w1.weight", "model.layers.{i}.mlp.up_proj.weight"),\n'
            '    ("blocks.{i}.feed_forward.w3.weight", "model.layers.{i}.mlp.gate_proj.weight"),'
        ),
        tests=("tests/test_hf_parity.py::test_import_matches_transformers",),
    ),
    Mutation(
        name="HF norm eps not carried over",
        file="olmo2_lit/weights/convert_hf.py",
        original='("norm_eps", "rms_norm_eps", 1e-5),',
        replacement='("init_std", "rms_norm_eps", 1e-5),',
        tests=("tests/test_convert_hf.py::test_hf_config_of_7b_matches_the_release",),
    ),
    # --- callbacks and metrics --------------------------------------------------------------------
    Mutation(
        name="model summary FLOPs at twice the sequence length",
        file="callbacks/model_summary.py",
        original="fpt = flops_per_token(pl_module.config, seq)",
        replacement="fpt = flops_per_token(pl_module.config, 2 * seq)",
        tests=("tests/callbacks/test_progress_and_summary.py",),
    ),
    Mutation(
        name="progress bar counts micro-batches",
        file="callbacks/progress.py",
        original="        bar.n = trainer.global_step\n",
        replacement="        bar.n = trainer.global_step * trainer.accumulate_grad_batches\n",
        tests=("tests/callbacks/test_progress_and_summary.py",),
    ),
    Mutation(
        name="MFU without the peak",
        file="callbacks/throughput.py",
        original="self._flops_per_token * rate / (self._peak * trainer.world_size)",
        replacement="self._flops_per_token * rate / trainer.world_size",
        tests=("tests/training/test_fit.py::test_tensorboard_event_files_hold_every_metric",),
    ),
    Mutation(
        name="grad norm logged after clipping",
        file="olmo2_lit/train/lit_module.py",
        original="        self.log(M.GRAD_NORM, norm)\n",
        replacement="        self.log(M.GRAD_NORM, norm.clamp(max=0.05))\n",
        tests=(TRAINING_STEP,),
    ),
    # --- the step record and the step callbacks (issue 20) -------------------------------------------
    Mutation(
        name="step callbacks run in list order, interventions before observers",
        file="callbacks/step_callback.py",
        original="    return [cb for role in ROLES for cb in found if cb.role == role]\n",
        replacement="    return found\n",
        tests=(
            "tests/callbacks/test_step_record.py::test_step_callbacks_run_observers_then_interventions_then_stops_in_list_order",
        ),
    ),
    Mutation(
        name="a SkipStepAdamW skip not recorded in the step record",
        file="olmo2_lit/train/lit_module.py",
        original='                record = replace(record, skipped=True, skip_reason="spike")\n',
        replacement="                pass\n",
        tests=("tests/callbacks/test_step_record.py::test_record_says_which_steps_were_skipped_and_why",),
    ),
    Mutation(
        name="the record's tokens_seen read before the step's last micro-batch",
        file="olmo2_lit/train/lit_module.py",
        original="            tokens_seen=self.trainer.datamodule.tokens_seen,\n",
        replacement="            tokens_seen=self.trainer.datamodule.tokens_seen - 1,\n",
        tests=(
            "tests/callbacks/test_step_record.py::test_one_record_per_optimizer_step_matching_what_the_module_logged",
        ),
    ),
    Mutation(
        name="rollback resumes without skipping the spiked data",
        file="callbacks/rollback.py",
        original="skip_tokens(restart.tokens_seen - trainer.datamodule.tokens_seen)",
        replacement="skip_tokens(0)",
        tests=(
            "tests/callbacks/test_rollback.py::test_rollback_restores_checkpoint_skips_data_and_finishes",
        ),
    ),
    # --- DeepSpeed --------------------------------------------------------------------------------
    Mutation(
        name="consolidated Adam state read from the first flat group for every param group",
        file="olmo2_lit/weights/deepspeed_state.py",
        original='flat_state = [r["state"][k] for r in ranks]',
        replacement='flat_state = [r["state"][0] for r in ranks]',
        tests=(
            "tests/training/test_deepspeed_fit.py"
            "::test_zero2_trains_like_one_process_and_consolidates_with_adam_state",
        ),
    ),
    Mutation(
        name="checkpoint wrapper forwards DeepSpeed's hook marks to the block",
        file="olmo2_lit/train/parallelize.py",
        original="        if name in self.OWN:\n",
        replacement="        if False:\n",
        tests=(
            "tests/training/test_deepspeed_fit.py"
            "::test_zero3_with_activation_checkpointing_trains_like_one_process",
        ),
    ),
    Mutation(
        name="FSDP2 resumes a file through Lightning's loader (Adam state numbered in module order)",
        file="olmo2_lit/train/strategies.py",
        original='accepts=("file", "distributed"), strategy="FSDP2") == "file":',
        replacement='accepts=("file", "distributed"), strategy="FSDP2") == "never":',
        tests=(
            "tests/training/test_sharded_resume.py"
            "::test_ddp_resume_is_bitwise_and_its_file_resumes_under_fsdp2",
        ),
    ),
    Mutation(
        name="start-up time not less a normal step's",
        file="olmo2_lit/train/startup.py",
        original="return max(0.0, self.first_step_s - self.second_step_s)",
        replacement="return max(0.0, self.first_step_s)",
        tests=("tests/test_startup.py",),
    ),
    Mutation(
        name="start-up time negative when the second step is the slower",
        file="olmo2_lit/train/startup.py",
        original="return max(0.0, self.first_step_s - self.second_step_s)",
        replacement="return self.first_step_s - self.second_step_s",
        tests=("tests/test_startup.py",),
    ),
    Mutation(
        name="lr: 0 not warned about",
        file="olmo2_lit/train/zero_lr.py",
        original="if not any(peaks):",
        replacement="if False:",
        tests=("tests/callbacks/test_zero_lr.py",),
    ),
    Mutation(
        name="a schedule at 0 over the whole fit not warned about",
        file="olmo2_lit/train/zero_lr.py",
        original="if any(peak * schedule.factor(t) for peak in peaks):",
        replacement="if any(peaks):",
        tests=("tests/callbacks/test_zero_lr.py",),
    ),
    Mutation(
        name="the zero-LR check reads the schedule one step late",
        file="olmo2_lit/train/zero_lr.py",
        original="schedule, first = scheduler.schedule, scheduler.last_epoch + 1",
        replacement="schedule, first = scheduler.schedule, scheduler.last_epoch + 2",
        tests=("tests/callbacks/test_zero_lr.py",),
    ),
    Mutation(
        name="a fit's last step is not saved when it is off the checkpoint interval",
        file="callbacks/checkpoint.py",
        original="if 0 < trainer.max_steps <= trainer.global_step:",
        replacement="if trainer.max_steps < 0:",
        tests=("tests/callbacks/test_checkpoint.py::test_the_last_step_is_saved_once_whatever_the_interval",),
    ),
    Mutation(
        name="a fit's last step saved twice when it is on the checkpoint interval",
        file="olmo2_lit/compat.py",
        original="if callback._should_skip_saving_checkpoint(trainer):",
        replacement="if False:",
        tests=("tests/callbacks/test_checkpoint.py::test_the_last_step_is_saved_once_whatever_the_interval",),
    ),
    Mutation(
        name="FSDP v1 resumes a file through Lightning's loader (Adam state numbered in module order)",
        file="olmo2_lit/train/strategies.py",
        original='accepts=("file", "distributed"), strategy="FSDP (v1)") == "file":',
        replacement='accepts=("file", "distributed"), strategy="FSDP (v1)") == "never":',
        tests=(
            "tests/training/test_fsdp_v1_fit.py"
            "::test_one_file_checkpoints_resume_under_fsdp_v1_with_adam_state_on_the_right_parameters",
        ),
    ),
    Mutation(
        name="a file's optimizer state numbered as torch numbers it, not matched through its saved groups",
        file="olmo2_lit/train/full_load.py",
        original="name = dict(zip(saved, current))",
        replacement="name = dict(enumerate(current))",
        tests=(
            "tests/training/test_fsdp_v1_fit.py"
            "::test_file_optimizer_state_is_matched_to_parameters_through_its_saved_groups",
        ),
    ),
    # --- issue 22: downstream eval against ai2-olmo-eval, generation rows ending apart --------------
    Mutation(
        name="pmi_dc score cached by its query alone (choices differing only in their last token share it)",
        file="olmo2_lit/eval/scoring.py",
        original="return self.dc_query[: self.dc_len] + self.continuation",
        replacement="return self.dc_query",
        tests=("tests/eval/test_downstream.py::test_every_request_and_accuracy_equal_ai2_olmo_eval",),
    ),
    Mutation(
        name="a task's limit keeps one question too many",
        file="olmo2_lit/eval/tasks.py",
        original="first = list(dict.fromkeys(r.doc_id for r in task.requests))[:limit]",
        replacement="first = list(dict.fromkeys(r.doc_id for r in task.requests))[: limit + 1]",
        tests=("tests/eval/test_downstream.py::test_task_limit_in_the_callback_keeps_the_first_questions",),
    ),
    Mutation(
        name="a generation row that ended goes on yielding tokens",
        file="olmo2_lit/model/generate.py",
        original="return [None if e else t for e, t in zip(self.ended, tokens)]",
        replacement="return list(tokens)",
        tests=("tests/model/test_generate.py::test_stream_rows_end_at_eos_at_different_steps",),
    ),
    Mutation(
        name="generation stops when the first row ends, not the last",
        file="olmo2_lit/model/generate.py",
        original="return all(self.ended)",
        replacement="return any(self.ended)",
        tests=("tests/model/test_generate.py::test_stream_rows_end_at_eos_at_different_steps",),
    ),
    Mutation(
        name="a generation row's stop sequence matched against its last token only",
        file="olmo2_lit/model/generate.py",
        original="any(tuple(tail[-len(s) :]) == s for s in self.stops)",
        replacement="any(tail[-1] == s[-1] for s in self.stops)",
        tests=("tests/model/test_generate.py::test_stream_rows_end_at_max_tokens_stop_sequences_and_eos",),
    ),
    Mutation(
        name="float8 converts the output projection too (not only the blocks' linear layers)",
        file="olmo2_lit/train/float8.py",
        original='take = fqn.startswith("blocks.") and',
        replacement="take =",
        tests=("tests/training/test_parallelize.py::test_float8_converts_the_blocks_linear_layers_only",),
    ),
    Mutation(
        name="float8 accepted on an A100 (compute capability 8.0)",
        file="olmo2_lit/train/float8.py",
        original="MIN_CAPABILITY = (8, 9)",
        replacement="MIN_CAPABILITY = (8, 0)",
        tests=("tests/training/test_parallelize.py::test_float8_refuses_gpus_without_float8_matmuls",),
    ),
    Mutation(
        name="compile: auto compiles on the CPU too",
        file="olmo2_lit/train/parallelize.py",
        original='if input_ids.device.type == "cuda":',
        replacement="if True:",
        tests=("tests/training/test_parallelize.py::test_compile_auto_stays_eager_on_cpu_and_true_compiles",),
    ),
    # --- research workflows (issue 23) -------------------------------------------------------------
    Mutation(
        name="compare's spread over seeds uses the population std",
        file="olmo2_lit/research/stats.py",
        original="std = float(x.std(ddof=1))",
        replacement="std = float(x.std(ddof=0))",
        tests=("tests/research/test_compare.py::test_table_matches_a_hand_computation",),
    ),
    Mutation(
        name="compare's 95% interval uses the normal 1.96 instead of Student's t",
        file="olmo2_lit/research/stats.py",
        original="half = t_quantile(0.975, n - 1) * std / math.sqrt(n)",
        replacement="half = 1.96 * std / math.sqrt(n)",
        tests=("tests/research/test_compare.py::test_table_matches_a_hand_computation",),
    ),
    # --- issue 21 (4): the OLMo trainer's (ai2-olmo) checkpoints -------------------------------------
    Mutation(
        name="from-olmo-trainer: Adam moments not rescaled to our loss normalization",
        file="olmo2_lit/weights/olmo_trainer.py",
        original='for key, factor in (("exp_avg", scale), ("exp_avg_sq", scale**2)):',
        replacement='for key, factor in (("exp_avg", 1.0), ("exp_avg_sq", 1.0)):',
        tests=("tests/training/test_olmo_trainer_refusals.py::test_weights_moments_step_and_position_map",),
    ),
    Mutation(
        name="from-olmo-trainer: data position one global batch late",
        file="olmo2_lit/weights/olmo_trainer.py",
        original='"tokens": int(train["global_train_examples_seen_this_epoch"]) * length,',
        replacement='"tokens": (int(train["global_train_examples_seen_this_epoch"]) + 8) * length,',
        tests=("tests/training/test_olmo_trainer_refusals.py::test_weights_moments_step_and_position_map",),
    ),
    Mutation(
        name="from-olmo-trainer: FSDP's wrapper prefix left on parameter names",
        file="olmo2_lit/weights/olmo_trainer.py",
        original='return name.replace("_fsdp_wrapped_module.", "").removeprefix("module.")',
        replacement='return name.removeprefix("module.")',
        tests=(
            "tests/training/test_olmo_trainer_refusals.py::test_an_fsdp_checkpoint_converts_as_the_ddp_one",
        ),
    ),
    Mutation(
        name="held-out CE not synced over ranks (each rank early-stops on its own batches)",
        file="olmo2_lit/train/lit_module.py",
        original="self.val_ce = MeanMetric()",
        replacement="self.val_ce = MeanMetric(sync_on_compute=False)",
        tests=(
            "tests/training/test_one_rank_events.py::test_early_stopping_on_one_rank_s_held_out_spike_stops_both",
        ),
    ),
    Mutation(
        name="Rollback's checkpoint chosen from each rank's own view of the files",
        file="callbacks/rollback.py",
        original=(
            "if trainer.is_global_zero:\n"
            "            good = [(g, p) for g, p in self.checkpoints if g <= first and Path(p).exists()]\n"
            "        if trainer.world_size > 1:\n"
            "            good = trainer.strategy.broadcast(good, src=0)"
        ),
        replacement="good = [(g, p) for g, p in self.checkpoints if g <= first and Path(p).exists()]",
        tests=("tests/training/test_one_rank_events.py::test_spike_and_nan_on_one_rank_are_decided_on_both",),
    ),
    Mutation(
        name="PrintSamples generates on rank 0 only (its FSDP2 gathers wait for peers that left)",
        file="callbacks/samples.py",
        original=(
            "samples = self._generate(pl_module) if self._tok is not None else None\n"
            "        if not trainer.is_global_zero:\n"
            "            return\n"
        ),
        replacement=(
            "if not trainer.is_global_zero:\n"
            "            return\n"
            "        samples = self._generate(pl_module) if self._tok is not None else None\n"
        ),
        tests=(
            "tests/training/test_samples_sharded.py"
            "::test_print_samples_under_fsdp2_prints_once_what_generate_gives_from_the_checkpoint",
        ),
    ),
    Mutation(
        name="PrintSamples rows not cut at their EOS",
        file="callbacks/samples.py",
        original="return [tok.decode(ids[: ids.index(eos)] if eos in ids else ids) for ids in outputs]",
        replacement="return [tok.decode(ids) for ids in outputs]",
        tests=("tests/eval/test_generate_cli.py::test_print_samples_cuts_each_row_at_its_own_eos",),
    ),
    Mutation(
        name="a resume from a step on the interval saves that step again mid-step",
        file="callbacks/checkpoint.py",
        original="if trainer.global_step == self.started_at:",
        replacement="if False:",
        tests=(
            "tests/callbacks/test_checkpoint.py"
            "::test_a_resume_from_a_step_on_the_interval_does_not_save_that_step_again",
        ),
    ),
    # --- issue 22: written from the code and docs only, by someone who did not write the tests ---
    # (each was written reading olmo2_lit/, callbacks/ and docs/ only; the tests named are the ones
    # found to fail by running test files by name, not by reading them)
    # 1. edges of windows and thresholds in callbacks and schedules
    Mutation(
        name="paper spike score strict at exactly sigma",
        file="olmo2_lit/train/spikes.py",
        original="return value >= threshold if self.inclusive else value > threshold",
        replacement="return value > threshold",
        tests=("tests/test_spikes.py::test_threshold_by_hand",),
    ),
    Mutation(
        name="OLMo-core spike rule inclusive at exactly sigma",
        file="olmo2_lit/train/spikes.py",
        original="return value >= threshold if self.inclusive else value > threshold",
        replacement="return value >= threshold",
        tests=("tests/test_spikes.py::test_threshold_by_hand",),
    ),
    Mutation(
        name="spike rule judges one value late",
        file="olmo2_lit/train/spikes.py",
        original="if len(self.history) < self.warmup:",
        replacement="if len(self.history) <= self.warmup:",
        tests=("tests/test_spikes.py::test_threshold_by_hand",),
    ),
    Mutation(
        name="recent spike rate needs one step more than its window",
        file="olmo2_lit/train/spikes.py",
        original="if len(self.recent) >= self.window else None",
        replacement="if len(self.recent) > self.window else None",
        tests=("tests/test_spikes.py::test_step_spikes_if_either_signal_spikes",),
    ),
    Mutation(
        name="total spike rate logged one step late",
        file="olmo2_lit/train/spikes.py",
        original="self.rate.total_steps >= self.loss.window",
        replacement="self.rate.total_steps > self.loss.window",
        tests=("tests/test_spikes.py::test_matches_olmo_core_stability_monitor",),
    ),
    Mutation(
        name="paper score counts the first unjudged value",
        file="olmo2_lit/train/spikes.py",
        original="judged = len(self.rule.history) >= self.rule.warmup",
        replacement="judged = len(self.rule.history) >= self.rule.warmup - 1",
        tests=("tests/test_spikes.py::test_paper_score_by_hand",),
    ),
    Mutation(
        name="LRBackoff needs one spike more than spikes",
        file="callbacks/lr_backoff.py",
        original="if len(self.spike_steps) >= self.spikes:",
        replacement="if len(self.spike_steps) > self.spikes:",
        tests=("tests/callbacks/test_stability_resume.py::test_resume_is_bitwise_with_stability_on",),
    ),
    Mutation(
        name="SkipStepAdamW keeps one value too few",
        file="olmo2_lit/train/skip_step.py",
        original="del self._losses[: -(self.rolling_interval_length + 1)]",
        replacement="del self._losses[: -self.rolling_interval_length]",
        tests=("tests/test_skip_step.py::test_state_dict_round_trip_keeps_the_history",),
    ),
    Mutation(
        name="cosine rises again after t_max",
        file="olmo2_lit/train/schedules.py",
        original="progress = min((t - self.warmup) / (self.t_max - self.warmup), 1.0)",
        replacement="progress = (t - self.warmup) / (self.t_max - self.warmup)",
        tests=("tests/test_schedules.py::test_olmo2_7b_cosine_reaches_stage2_start_lr",),
    ),
    Mutation(
        name="schedule accepts warmup equal to t_max",
        file="olmo2_lit/train/schedules.py",
        original="if warmup >= t_max:",
        replacement="if warmup > t_max:",
        tests=("tests/test_schedules.py::test_invalid_schedules_raise",),
    ),
    Mutation(
        name="DownstreamEval runs once per micro-batch of the step",
        file="callbacks/downstream_eval.py",
        original="if step == 0 or step == self._last_step or step % self.every_n_steps:",
        replacement="if step == 0 or step % self.every_n_steps:",
        tests=("tests/training/test_eval_callbacks.py::test_downstream_eval_logs_per_task_metrics_in_a_fit",),
    ),
    # 2. decisions taken on several ranks
    Mutation(
        name="step loss not summed over ranks",
        file="olmo2_lit/train/loss.py",
        original='sums = strategy.reduce(self._sums, reduce_op="sum")',
        replacement="sums = self._sums",
        tests=(
            "tests/training/test_loss_normalization.py::test_one_step_equals_olmo_core_loss_at_every_split",
        ),
    ),
    Mutation(
        name="tokens_seen counts this rank's micro-batches only",
        file="olmo2_lit/data/datamodule.py",
        original='self._tracker.advance(batch["input_ids"].shape[0] * self._world_size())',
        replacement='self._tracker.advance(batch["input_ids"].shape[0])',
        tests=("tests/data/test_ddp.py::test_real_ddp_ranks_split_each_global_batch",),
    ),
    Mutation(
        name="loss scale leaves out the world size",
        file="olmo2_lit/train/strategies.py",
        original="return plan.accumulation * plan.world_size / target_tokens(plan)",
        replacement="return plan.accumulation / target_tokens(plan)",
        tests=(
            "tests/training/test_loss_normalization.py::test_one_step_equals_olmo_core_loss_at_every_split",
        ),
    ),
    Mutation(
        name="accumulation leaves out the other ranks",
        file="olmo2_lit/data/batch_plan.py",
        original="return self.global_batch // self.instances_per_micro_step",
        replacement="return self.global_batch // self.micro_batch",
        tests=("tests/data/test_batch_plan.py::test_derived_sizes_of_the_7b_recipe",),
    ),
    # 3. non-default settings
    Mutation(
        name="SkipStepAdamW ignores a group's weight decay",
        file="olmo2_lit/train/skip_step.py",
        original='weight_decay=group["weight_decay"],',
        replacement='weight_decay=self.defaults["weight_decay"],',
        tests=("tests/test_skip_step.py::test_bitwise_parity_with_olmo_core",),
    ),
    Mutation(
        name="SkipStepAdamW step_increment_bugfix false ignored",
        file="olmo2_lit/train/skip_step.py",
        original="self.stepfix = step_increment_bugfix",
        replacement="self.stepfix = True",
        tests=("tests/test_skip_step.py::test_bitwise_parity_with_olmo_core",),
    ),
    Mutation(
        name="RMSNorm of bf16 input computed in bf16",
        file="olmo2_lit/model/norms.py",
        original="            h = x.float()\n",
        replacement="            h = x\n",
        tests=("tests/model/test_norms_rope.py::test_rmsnorm_bf16_rounds_once_after_the_weight",),
    ),
    Mutation(
        name="unfused loss of bf16 logits in bf16",
        file="olmo2_lit/train/loss.py",
        original="logits = logits.float().flatten(0, -2)",
        replacement="logits = logits.flatten(0, -2)",
        tests=("tests/test_loss.py::test_ce_and_z_loss_match_definition",),
    ),
    Mutation(
        name="special tokens counted as bytes",
        file="olmo2_lit/eval/bits_per_byte.py",
        original="if idx >= table.numel() or token in special:",
        replacement="if idx >= table.numel():",
        tests=("tests/eval/test_bits_per_byte.py::test_token_bytes_sum_to_the_utf8_size",),
    ),
    Mutation(
        name="a task's limit counts requests, not questions",
        file="olmo2_lit/eval/tasks.py",
        original="first = list(dict.fromkeys(r.doc_id for r in task.requests))[:limit]",
        replacement="first = [r.doc_id for r in task.requests][:limit]",
        tests=("tests/eval/test_downstream.py::test_task_limit_in_the_callback_keeps_the_first_questions",),
    ),
    Mutation(
        name="DownstreamEval ignores a task's limit",
        file="callbacks/downstream_eval.py",
        original="primary_metric=spec.primary_metric, limit=spec.limit)",
        replacement="primary_metric=spec.primary_metric, limit=None)",
        tests=("tests/eval/test_downstream.py::test_task_limit_in_the_callback_keeps_the_first_questions",),
    ),
    Mutation(
        name="eval requests truncated on the right",
        file="olmo2_lit/eval/scoring.py",
        original="query = query[-context_length:]",
        replacement="query = query[:context_length]",
        tests=("tests/eval/test_downstream.py::test_every_request_and_accuracy_equal_ai2_olmo_eval",),
    ),
    Mutation(
        name="document_masking ignored in training batches",
        file="olmo2_lit/data/datamodule.py",
        original=(
            "            eos_token_id=self.eos_token_id if self.document_masking else "
            "None,\n            instance_filter=self.instance_filter,"
        ),
        replacement=("            eos_token_id=None,\n            instance_filter=self.instance_filter,"),
        tests=("tests/data/test_document_masking.py::test_packed_logits_equal_each_document_run_alone",),
    ),
    Mutation(
        name="z_loss_multiplier 0 does not disable the fused z-loss",
        file="olmo2_lit/model/fused_loss.py",
        original="float(z_loss_multiplier or 0.0),",
        replacement="float(z_loss_multiplier or 1e-5),",
        tests=("tests/model/test_fused_loss.py::test_ignored_positions_get_no_gradient_and_z_off_is_zero",),
    ),
    Mutation(
        name="order olmo_core numbers its epochs from 0",
        file="olmo2_lit/data/sampler.py",
        original="np.random.PCG64(seed + epoch + 1)",
        replacement="np.random.PCG64(seed + epoch)",
        tests=(
            "tests/data/test_order_parity.py::test_olmo_core_order_equals_olmo_cores_loader_on_every_rank",
        ),
    ),
    # 4. generation: rows of a batch that end at different steps
    Mutation(
        name="generate keeps the EOS token",
        file="olmo2_lit/model/generate.py",
        original="if tok is not None and tok != eos_id:",
        replacement="if tok is not None:",
        tests=("tests/model/test_generate.py::test_eos_ends_each_row_at_its_first_eos",),
    ),
    Mutation(
        name="generation one token short at the context's end",
        file="olmo2_lit/model/generate.py",
        original="steps = min(max_new_tokens, context - longest + 1)",
        replacement="steps = min(max_new_tokens, context - longest)",
        tests=(
            "tests/model/test_generate.py::test_generation_stops_at_the_context_and_rejects_longer_prompts",
        ),
    ),
    Mutation(
        name="left padding attended by the shorter rows",
        file="olmo2_lit/model/generate.py",
        original="valid[i, longest - len(p) :] = True",
        replacement="valid[i, :] = True",
        tests=("tests/model/test_generate.py::test_greedy_matches_transformers_generate",),
    ),
    Mutation(
        name="stop tail keeps the shortest stop's length",
        file="olmo2_lit/model/generate.py",
        original="self.keep = max((len(s) for s in stops), default=0)",
        replacement="self.keep = min((len(s) for s in stops), default=0)",
        tests=("tests/model/test_generate.py::test_stream_rows_end_at_max_tokens_stop_sequences_and_eos",),
    ),
    Mutation(
        name="EOS ends a row only when it is the first row",
        file="olmo2_lit/model/generate.py",
        original="if tok == self.eos_id or any(",
        replacement="if (tok == self.eos_id and i == 0) or any(",
        tests=("tests/model/test_generate.py::test_each_row_of_a_batch_ends_as_it_would_alone",),
    ),
    Mutation(
        name="generate CLI stop texts ignored",
        file="olmo2_lit/eval/generate_cli.py",
        original="stop=stops,\n            seed=seed + i,",
        replacement="stop=[],\n            seed=seed + i,",
        tests=(
            "tests/eval/test_generate_cli.py::test_stop_text_ends_each_prompt_where_its_tokens_are_produced",
        ),
    ),
    Mutation(
        name="top-k drops the k-th token itself",
        file="olmo2_lit/model/generate.py",
        original='logits = logits.masked_fill(logits < kth, float("-inf"))',
        replacement='logits = logits.masked_fill(logits <= kth, float("-inf"))',
        tests=("tests/model/test_generate.py::test_sampling_is_seeded_and_top_k_1_is_greedy",),
    ),
    Mutation(
        name="uncached generation feeds row 0's token to every row",
        file="olmo2_lit/model/generate.py",
        original="rows = [torch.cat([r, t[None]]) for r, t in zip(rows, nxt)]",
        replacement="rows = [torch.cat([r, nxt[:1]]) for r in rows]",
        tests=("tests/model/test_generate.py::test_cache_equals_recomputing_the_prefix",),
    ),
    Mutation(
        name="temperature multiplies the logits",
        file="olmo2_lit/model/generate.py",
        original="logits = logits / temperature",
        replacement="logits = logits * temperature",
        tests=("tests/model/test_generate.py::test_filter_logits_matches_transformers_warpers",),
    ),
    # 5. resume positions that are not multiples of the batch
    Mutation(
        name="resume position rounded up, skipping instances",
        file="olmo2_lit/data/resume.py",
        original="aligned = instances // step * step",
        replacement="aligned = -(-instances // step) * step",
        tests=(
            "tests/data/test_position.py::test_state_round_trips_and_a_resume_with_another_plan_keeps_the_token",
        ),
    ),
    Mutation(
        name="resume rounded down to a global batch",
        file="olmo2_lit/data/position.py",
        original=(
            "state, sequence_length=self.plan.sequence_length, step=self.plan.instances_per_micro_step"
        ),
        replacement="state, sequence_length=self.plan.sequence_length, step=self.plan.global_batch",
        tests=(
            "tests/data/test_position.py::test_state_round_trips_and_a_resume_with_another_plan_keeps_the_token",
        ),
    ),
    Mutation(
        name="replayed instances still counted in tokens_seen",
        file="olmo2_lit/data/resume.py",
        original='return state["epoch"], aligned, state["total_tokens"] - replayed',
        replacement='return state["epoch"], aligned, state["total_tokens"]',
        tests=(
            "tests/data/test_position.py::test_state_round_trips_and_a_resume_with_another_plan_keeps_the_token",
        ),
    ),
    Mutation(
        name="resume mid global batch restarts the batch",
        file="olmo2_lit/data/sampler.py",
        original=("for m in range(offset // world_size if b == first else 0, per_rank, micro_batch):"),
        replacement="for m in range(0, per_rank, micro_batch):",
        tests=("tests/data/test_sampler.py::test_starting_mid_epoch_continues_the_same_stream",),
    ),
    Mutation(
        name="skip_tokens rounds to one rank's micro-batch",
        file="olmo2_lit/data/position.py",
        original="        step = self.plan.instances_per_micro_step\n",
        replacement="        step = self.plan.micro_batch\n",
        tests=("tests/data/test_position.py::test_skip_rounds_up_to_a_micro_step_of_every_rank",),
    ),
    Mutation(
        name="position at exactly the epoch end not rolled over",
        file="olmo2_lit/data/position.py",
        original="while self.position.instances >= self.epoch_end:",
        replacement="while self.position.instances > self.epoch_end:",
        tests=(
            "tests/data/test_position.py::test_advance_counts_tokens_and_rolls_over_at_the_last_whole_global_batch",
        ),
    ),
    Mutation(
        name="resume offset inside a global batch taken per rank twice",
        file="olmo2_lit/data/sampler.py",
        original="first, offset = divmod(start, global_batch)",
        replacement="first, offset = divmod(start, global_batch)\n    offset *= world_size",
        tests=("tests/data/test_sampler.py::test_starting_mid_epoch_continues_the_same_stream",),
    ),
    # --- issue 22's independent mutations that no test caught when written; caught by tests added after ---
    Mutation(
        name="LRBackoff keeps a spike exactly window steps old",
        file="callbacks/lr_backoff.py",
        original="while self.spike_steps and self.spike_steps[0] <= self.steps - self.window:",
        replacement="while self.spike_steps and self.spike_steps[0] < self.steps - self.window:",
        tests=(
            "tests/callbacks/test_boundaries.py::test_two_spikes_trigger_a_backoff_only_within_window_steps",
        ),
    ),
    Mutation(
        name="LRBackoff reduced LR one step longer than duration",
        file="callbacks/lr_backoff.py",
        original="if t < self.duration:",
        replacement="if t <= self.duration:",
        tests=(
            "tests/callbacks/test_boundaries.py::test_the_backoff_lasts_duration_steps_then_ramps_over_recovery",
        ),
    ),
    Mutation(
        name="LRBackoff recovery ramp off by one step",
        file="callbacks/lr_backoff.py",
        original="(t - self.duration + 1) / (self.recovery + 1)",
        replacement="(t - self.duration) / (self.recovery + 1)",
        tests=(
            "tests/callbacks/test_boundaries.py::test_the_backoff_lasts_duration_steps_then_ramps_over_recovery",
        ),
    ),
    Mutation(
        name="Rollback keeps a spike exactly window steps old",
        file="callbacks/rollback.py",
        original="while self.spike_steps and self.spike_steps[0] <= step - self.window:",
        replacement="while self.spike_steps and self.spike_steps[0] < step - self.window:",
        tests=("tests/callbacks/test_boundaries.py::test_two_spikes_roll_back_only_within_window_steps",),
    ),
    Mutation(
        name="Rollback skips the checkpoint saved at the first spike's step",
        file="callbacks/rollback.py",
        original=("good = [(g, p) for g, p in self.checkpoints if g <= first and Path(p).exists()]"),
        replacement="good = [(g, p) for g, p in self.checkpoints if g < first and Path(p).exists()]",
        tests=("tests/callbacks/test_boundaries.py::test_the_checkpoint_at_the_spike_step_is_still_good",),
    ),
    Mutation(
        name="SkipStepAdamW judges one step late after its warm-up",
        file="olmo2_lit/train/skip_step.py",
        original="if len(self._losses) < max(2, self.rolling_interval_length // 2):",
        replacement="if len(self._losses) <= max(2, self.rolling_interval_length // 2):",
        tests=("tests/test_skip_step_boundaries.py::test_the_warmup_counts_the_current_loss",),
    ),
    Mutation(
        name="SkipStepAdamW skips a loss exactly at the threshold",
        file="olmo2_lit/train/skip_step.py",
        original="(self.latest_loss - loss_mean) <= self.sigma_factor * loss_std,\n",
        replacement="(self.latest_loss - loss_mean) < self.sigma_factor * loss_std,\n",
        tests=("tests/test_skip_step_boundaries.py::test_the_loss_threshold_is_inclusive",),
    ),
    Mutation(
        name="WSD schedule with no stable phase refused",
        file="olmo2_lit/train/schedules.py",
        original="if warmup + decay > t_max:",
        replacement="if warmup + decay >= t_max:",
        tests=(
            "tests/test_schedule_boundaries.py::test_wsd_with_no_stable_phase_peaks_once_and_decays_at_once",
        ),
    ),
    Mutation(
        name="WSD decay not clamped after t_max",
        file="olmo2_lit/train/schedules.py",
        original="progress = min((t - decay_start) / self.decay, 1.0)",
        replacement="progress = (t - decay_start) / self.decay",
        tests=("tests/test_schedule_boundaries.py::test_wsd_decays_over_the_last_decay_units",),
    ),
    Mutation(
        name="LRBackoff scales the first param group only",
        file="callbacks/lr_backoff.py",
        original="for group in trainer.optimizers[0].param_groups:",
        replacement="for group in trainer.optimizers[0].param_groups[:1]:",
        tests=("tests/callbacks/test_boundaries.py::test_a_backoff_scales_every_parameter_group",),
    ),
    Mutation(
        name="prompt exactly the context length refused",
        file="olmo2_lit/model/generate.py",
        original="if len(p) > context:",
        replacement="if len(p) >= context:",
        tests=("tests/model/test_generate.py::test_a_prompt_exactly_the_context_long_gets_one_token",),
    ),
    Mutation(
        name="top-p keeps a token whose preceding mass equals p",
        file="olmo2_lit/model/generate.py",
        original="drop_sorted = mass_before >= top_p",
        replacement="drop_sorted = mass_before > top_p",
        tests=(
            "tests/model/test_generate.py::test_top_p_at_the_exact_mass_of_the_tokens_above_keeps_what_transformers_keeps",
        ),
    ),
    Mutation(
        name="every param group scheduled at the first group's peak LR",
        file="olmo2_lit/train/schedules.py",
        original="return [base * f for base in self.base_lrs]",
        replacement="return [self.base_lrs[0] * f for base in self.base_lrs]",
        tests=(
            "tests/options/test_param_groups_fit.py::test_each_group_steps_with_its_own_lr_and_decay_and_keeps_them_on_resume",
        ),
    ),
    Mutation(
        name="param groups: the last matching group wins",
        file="olmo2_lit/train/optim.py",
        original="for i, group in enumerate(groups):",
        replacement="for i, group in reversed(list(enumerate(groups))):",
        tests=("tests/test_optim.py::test_the_first_matching_group_takes_a_parameter",),
    ),
    Mutation(
        name="only the first override group reaches the optimizer",
        file="olmo2_lit/train/optim.py",
        original="for i, (group, params) in enumerate(zip(groups, buckets)):",
        replacement="for i, (group, params) in enumerate(zip(groups[:1], buckets)):",
        tests=("tests/test_optim.py::test_the_first_matching_group_takes_a_parameter",),
    ),
    Mutation(
        name="SkipStepAdamW runs every group at the first group's LR",
        file="olmo2_lit/train/skip_step.py",
        original='lr=group["lr"],',
        replacement='lr=self.param_groups[0]["lr"],',
        tests=(
            "tests/test_skip_step.py::test_groups_keep_their_own_lr_and_moments_take_the_dtype_as_in_olmo_core",
        ),
    ),
    Mutation(
        name="SkipStepAdamW moments dtype ignored",
        file="olmo2_lit/train/skip_step.py",
        original='state["exp_avg"] = torch.zeros_like(p, dtype=self.dtype)',
        replacement='state["exp_avg"] = torch.zeros_like(p)',
        tests=(
            "tests/test_skip_step.py::test_groups_keep_their_own_lr_and_moments_take_the_dtype_as_in_olmo_core",
        ),
    ),
    Mutation(
        name="Rollback refuses a checkpoint interval equal to its window",
        file="callbacks/rollback.py",
        original="if every > self.window:",
        replacement="if every >= self.window:",
        tests=(
            "tests/callbacks/test_boundaries.py::test_the_checkpoint_interval_may_be_as_long_as_the_window",
        ),
    ),
    Mutation(
        name="NonFiniteGuard skips one step more than max_skips",
        file="callbacks/nonfinite_guard.py",
        original='if self.action == "skip" and self.skips < self.max_skips:',
        replacement='if self.action == "skip" and self.skips <= self.max_skips:',
        tests=("tests/callbacks/test_boundaries.py::test_skip_stops_once_max_skips_steps_were_skipped",),
    ),
    Mutation(
        name="non-finite loss enters the spike history",
        file="callbacks/spike_monitor.py",
        original="spike = self.detector.update(loss, norm) if finite else False",
        replacement="spike = self.detector.update(loss, norm)",
        tests=("tests/callbacks/test_boundaries.py::test_a_non_finite_step_stays_out_of_the_spike_history",),
    ),
    Mutation(
        name="each rank counts every held-out batch as its own",
        file="olmo2_lit/data/datasets.py",
        original="return len(self.index) // (self.micro_batch * self.world_size)",
        replacement="return len(self.index) // self.micro_batch",
        tests=(
            "tests/data/test_instances.py::test_each_held_out_rank_yields_as_many_batches_as_its_len_says",
        ),
    ),
    Mutation(
        name="layer_norm ignores its weight",
        file="olmo2_lit/model/norms.py",
        original="F.layer_norm(x.float(), (self.size,), self.weight.float(), None, self.eps)",
        replacement="F.layer_norm(x.float(), (self.size,), None, None, self.eps)",
        tests=("tests/model/test_norms_rope.py::test_layer_norm_applies_its_weight",),
    ),
    Mutation(
        name="byte-fallback token counted by its name's length",
        file="olmo2_lit/eval/bits_per_byte.py",
        original="            table[idx] = 1\n",
        replacement="            table[idx] = len(token)\n",
        tests=(
            "tests/options/test_tokenizer_options.py::test_bits_per_byte_counts_the_spaces_a_non_byte_level_tokenizer_drops",
        ),
    ),
    Mutation(
        name="every tokenizer taken as byte-level",
        file="olmo2_lit/eval/bits_per_byte.py",
        original=('return decoder is not None and "ByteLevel" in type(decoder).__name__ + repr(decoder)'),
        replacement="return True",
        tests=(
            "tests/options/test_tokenizer_options.py::test_bits_per_byte_counts_the_spaces_a_non_byte_level_tokenizer_drops",
        ),
    ),
    Mutation(
        name="DownstreamEval ignores bos_token_id",
        file="callbacks/downstream_eval.py",
        original="bos_token_id=self.bos_token_id,\n            )",
        replacement="bos_token_id=None,\n            )",
        tests=("tests/options/test_eval_options.py::test_bos_token_id_starts_every_context",),
    ),
    Mutation(
        name="Preemption needs the signal on every rank",
        file="callbacks/preemption.py",
        original='reduce_op="max")',
        replacement='reduce_op="min")',
        tests=(
            "tests/training/test_one_rank_events.py::test_signal_to_one_rank_stops_both_at_the_same_step[rank1-SIGUSR1]",
        ),
    ),
    Mutation(
        name="non-byte-level token counted in characters, not bytes",
        file="olmo2_lit/eval/bits_per_byte.py",
        original=('table[idx] = len(tokenizer.decode([idx], skip_special_tokens=False).encode("utf-8"))'),
        replacement="table[idx] = len(tokenizer.decode([idx], skip_special_tokens=False))",
        tests=(
            "tests/options/test_tokenizer_options.py::test_a_tokenizer_without_an_anchor_counts_utf8_bytes",
        ),
    ),
    Mutation(
        name="eval scores bf16 logits in bf16",
        file="olmo2_lit/eval/scoring.py",
        original="logits[row, start : start + len(cont)].float()",
        replacement="logits[row, start : start + len(cont)]",
        tests=("tests/eval/test_scoring_dtype.py::test_bf16_logits_are_scored_in_fp32",),
    ),
    Mutation(
        name="instance_filter ignored in training batches",
        file="olmo2_lit/data/datamodule.py",
        original="            instance_filter=self.instance_filter,",
        replacement="            instance_filter=False,",
        tests=("tests/data/test_datamodule.py::test_instance_filter_reaches_the_training_batches",),
    ),
    Mutation(
        name="Rollback record holds rank 0's instances only",
        file="callbacks/rollback.py",
        original="if trainer.world_size > 1:\n            ids = trainer.strategy.all_gather(ids)",
        replacement="if False:\n            ids = trainer.strategy.all_gather(ids)",
        tests=("tests/callbacks/test_stability_ddp.py::test_ddp_detects_skips_and_rolls_back_on_every_rank",),
    ),
    Mutation(
        name="SLURM requeue decided by each rank alone",
        file="callbacks/slurm.py",
        original="if not trainer.strategy.reduce_boolean_decision(self._signalled, all=False):",
        replacement="if not self._signalled:",
        tests=(
            "tests/training/test_one_rank_events.py::test_slurm_requeue_signal_to_one_task_requeues_once_from_both",
        ),
    ),
    # --- second independent audit: caught by tests written after it ---
    Mutation(
        name="smoothing not debiased",
        file="olmo2_lit/research/stats.py",
        original="out[i] = last / (1 - weight ** (i + 1))",
        replacement="out[i] = last",
        tests=("tests/research/test_stats.py::test_smoothing_is_debiased_from_the_first_value",),
    ),
    Mutation(
        name="Student t CDF of odd df with one term too many",
        file="olmo2_lit/research/stats.py",
        original="for k in range(1, (df - 1) // 2):",
        replacement="for k in range(1, (df + 1) // 2):",
        tests=(
            "tests/research/test_stats.py::test_t_cdf_equals_the_integrated_density",
            "tests/research/test_stats.py::test_t_cdf_closed_forms_for_df_1_and_3",
            "tests/research/test_stats.py::test_t_quantiles_equal_the_printed_table",
        ),
    ),
    Mutation(
        name="spike counts of a curve exactly one window long",
        file="olmo2_lit/research/spike_counts.py",
        original="if n <= window:",
        replacement="if n < window:",
        tests=(
            "tests/research/test_spike_counts.py::test_a_curve_exactly_window_long_has_no_judged_value",
            "tests/research/test_spike_counts.py::test_paper_score_needs_a_value_after_a_full_window",
        ),
    ),
    Mutation(
        name="spike counts keep a step whose grad norm is not finite",
        file="olmo2_lit/research/spike_counts.py",
        original="finite = np.isfinite(lv) & np.isfinite(gv)",
        replacement="finite = np.isfinite(lv)",
        tests=(
            "tests/research/test_spike_counts.py::test_a_step_with_non_finite_grad_norm_is_left_out_of_both_signals",
        ),
    ),
    Mutation(
        name="plot band with the population std",
        file="olmo2_lit/research/plots.py",
        original="std = ys.std(axis=0, ddof=1)",
        replacement="std = ys.std(axis=0, ddof=0)",
        tests=(
            "tests/research/test_plot_band.py::test_band_is_mean_plus_minus_the_sample_std",
            "tests/research/test_plot_band.py::test_three_seeds_band_by_hand",
        ),
    ),
    Mutation(
        name="plot mean over the union of the seeds' ranges",
        file="olmo2_lit/research/plots.py",
        original="lo, hi = max(x[0] for x, _ in curves), min(x[-1] for x, _ in curves)",
        replacement="lo, hi = min(x[0] for x, _ in curves), max(x[-1] for x, _ in curves)",
        tests=("tests/research/test_plot_band.py::test_mean_curve_covers_only_the_steps_every_seed_covers",),
    ),
    Mutation(
        name="compare at a run's exact last step says it has not got there",
        file="olmo2_lit/research/compare.py",
        original="if not len(xs) or xs[-1] < position:",
        replacement="if not len(xs) or xs[-1] <= position:",
        tests=(
            "tests/research/test_value_at.py::test_value_at_a_position",
            "tests/research/test_value_at.py::test_value_at_the_exact_last_step_of_a_one_step_run",
        ),
    ),
    Mutation(
        name="report calls a run that logged step max_steps - 1 still running",
        file="olmo2_lit/research/report.py",
        original="last_step + 1 < max_steps",
        replacement="last_step < max_steps",
        tests=("tests/research/test_report_status.py::test_run_that_logged_its_last_step_is_finished",),
    ),
    Mutation(
        name="sweep keeps a done run whose config the grid changed",
        file="olmo2_lit/research/sweep.py",
        original='if status == "done" and record.get("config") not in (None, config):',
        replacement="if False:",
        tests=(
            "tests/research/test_sweep_record.py::test_done_run_whose_config_the_grid_changed_is_refused",
        ),
    ),
    # --- second independent audit (generation, zero LR): caught by tests written after it ---
    Mutation(
        name="top_k above the vocab passed to torch.topk unclamped",
        file="olmo2_lit/model/generate.py",
        original="min(top_k, logits.shape[-1])",
        replacement="top_k",
        tests=("tests/model/test_generate.py::test_top_k_at_or_above_the_vocab_keeps_every_token",),
    ),
    Mutation(
        name="generate verb samples every prompt with the same seed",
        file="olmo2_lit/eval/generate_cli.py",
        original="seed=seed + i,",
        replacement="seed=seed,",
        tests=("tests/eval/test_generate_cli.py::test_sampling_seeds_prompt_i_with_seed_plus_i",),
    ),
    Mutation(
        name="generate verb prints U+FFFD for a character split across tokens",
        file="olmo2_lit/eval/generate_cli.py",
        original='if not text.endswith("\\ufffd"):',
        replacement="if True:",
        tests=("tests/eval/test_generate_cli.py::test_a_character_split_across_tokens_prints_once_whole",),
    ),
    Mutation(
        name="zero-LR check of a resumed fit reads max_steps steps past the resume point",
        file="callbacks/housekeeping.py",
        original="steps = 1 if math.isinf(total) else int(total) - trainer.global_step",
        replacement="steps = 1 if math.isinf(total) else int(total)",
        tests=(
            "tests/callbacks/test_zero_lr.py::test_a_resumed_fit_whose_remaining_steps_are_all_at_zero_warns",
        ),
    ),
]

#: Issue 22 mutations that no test catches, because they change no behaviour (equivalent mutants, the
#: reason beside each): each replacement, alone, leaves every test named beside it passing. Not in
#: MUTATIONS (CI would fail); docs/testing.md ("Mutations") lists them. Move an entry into MUTATIONS,
#: with the catching test, if the code changes so that one can.
UNCAUGHT_ISSUE22 = [
    # 1. edges of windows and thresholds in callbacks and schedules
    # Equivalent in behaviour: at t = duration + recovery the ramp already gives exactly 1.0 (x + (1 - x)
    # rounds to 1), so every LR is the same; only ``since_trigger`` in the saved state is reset a step later.
    Mutation(
        name="LRBackoff ends one step after duration plus recovery",
        file="callbacks/lr_backoff.py",
        original="if t is None or t >= self.duration + self.recovery:",
        replacement="if t is None or t > self.duration + self.recovery:",
        tests=("tests/callbacks/test_lr_backoff.py",),
    ),
    # 3. non-default settings
    # Equivalent where the library runs RoPE: its cos/sin tables are built in fp32 on first use, and a
    # bf16 input times an fp32 table is computed in fp32 anyway. It differs only for tables built and then
    # cast to bf16 with the module (``rope.to(torch.bfloat16)`` after a forward).
    Mutation(
        name="RoPE of bf16 input rotated in bf16",
        file="olmo2_lit/model/rope.py",
        original="x32 = x.float()",
        replacement="x32 = x",
        tests=("tests/model/test_norms_rope.py",),
    ),
    # 4. generation: rows of a batch that end at different steps
]

#: Second independent audit (each written reading olmo2_lit/, callbacks/, docs/ only; the tests named were
#: found by running test files by name). Not in MUTATIONS yet. ``# uncaught`` marks those no test caught:
#: their ``tests`` are the files that were run.
AUDIT2 = [
    # 1. edges of windows, thresholds and intervals
    Mutation(
        name="WSD with decay 0 divides by zero at t_max",
        file="olmo2_lit/train/schedules.py",
        original="if t < decay_start or self.decay == 0:",
        replacement="if t < decay_start:",
        tests=("tests/test_schedule_boundaries.py::test_wsd_with_no_decay_holds_the_peak[8]",),
    ),
    Mutation(
        name="cosine and linear schedules refuse alpha_f 1",
        file="olmo2_lit/train/schedules.py",
        original=(
            "        if not 0.0 <= alpha_f <= 1.0:\n"
            '            raise ValueError(f"schedule alpha_f must be in [0, 1], got {alpha_f}")\n'
            "        self.warmup, self.t_max, self.alpha_f"
        ),
        replacement=(
            "        if not 0.0 <= alpha_f < 1.0:\n"
            '            raise ValueError(f"schedule alpha_f must be in [0, 1], got {alpha_f}")\n'
            "        self.warmup, self.t_max, self.alpha_f"
        ),
        tests=(
            "tests/test_schedule_boundaries.py::test_alpha_f_is_a_fraction_in_every_schedule[1.0-True-CosineWithWarmup]",
        ),
    ),
    Mutation(
        name="SigmaRule history unbounded after a resume",
        file="olmo2_lit/train/spikes.py",
        original='self.history = deque(state["history"], maxlen=self.window)',
        replacement='self.history = deque(state["history"])',
        tests=("tests/test_spikes.py::test_state_dict_resume_continues_exactly",),
    ),
    Mutation(
        name="SkipStepAdamW keeps one grad norm too few",
        file="olmo2_lit/train/skip_step.py",
        original="del self._grad_norms[: -(self.rolling_interval_length + 1)]",
        replacement="del self._grad_norms[: -self.rolling_interval_length]",
        tests=("tests/test_skip_step.py::test_state_dict_round_trip_keeps_the_history",),
    ),
    Mutation(
        name="SkipStepAdamW grad-norm mean and std include the current norm",
        file="olmo2_lit/train/skip_step.py",
        original="norm_std, norm_mean = torch.std_mean(torch.stack(self._grad_norms[:-1]))",
        replacement="norm_std, norm_mean = torch.std_mean(torch.stack(self._grad_norms))",
        tests=(
            "tests/test_skip_step_boundaries.py::test_the_grad_norm_threshold_is_inclusive_and_judged_on_its_own[1e-05-True]",
        ),
    ),
    Mutation(
        name="LRBackoff keeps the triggering spikes (the next spike triggers again)",
        file="callbacks/lr_backoff.py",
        original="            self.spike_steps.clear()\n            self.since_trigger, self.triggers",
        replacement="            self.since_trigger, self.triggers",
        tests=(
            "tests/callbacks/test_boundaries.py::test_two_spikes_trigger_a_backoff_only_within_window_steps[2-True]",
        ),
    ),
    Mutation(
        name="optim/lr_backoff logs the next step's multiplier",
        file="callbacks/lr_backoff.py",
        original=(
            "        pl_module.log(M.LR_BACKOFF, self.applied, rank_zero_only=True)"
            "  # what this step ran at\n"
            "        self.applied = self.multiplier()\n"
        ),
        replacement=(
            "        self.applied = self.multiplier()\n"
            "        pl_module.log(M.LR_BACKOFF, self.applied, rank_zero_only=True)"
            "  # what this step ran at\n"
        ),
        tests=(
            "tests/callbacks/test_boundaries.py::test_two_spikes_trigger_a_backoff_only_within_window_steps[2-True]",
        ),
    ),
    Mutation(
        name="Rollback stops one rollback before max_rollbacks",
        file="callbacks/rollback.py",
        original="if self.rollbacks > self.max_rollbacks:",
        replacement="if self.rollbacks >= self.max_rollbacks:",
        tests=("tests/callbacks/test_boundaries.py::test_the_run_stops_after_max_rollbacks[1-False]",),
    ),
    Mutation(
        name="Rollback record leaves out the first redone step",
        file="callbacks/rollback.py",
        original="steps = [(s, ids) for s, ids in self._batches if s >= restored_step]",
        replacement="steps = [(s, ids) for s, ids in self._batches if s > restored_step]",
        tests=(
            "tests/callbacks/test_rollback.py::test_rollback_restores_checkpoint_skips_data_and_finishes",
        ),
    ),
    Mutation(
        name="Rollback's count and spikes reset from the checkpoint it restarts from",
        file="callbacks/rollback.py",
        original="        if self._restart is not None:\n            return  # resuming from the good",
        replacement="        if False:\n            return  # resuming from the good",
        tests=(
            "tests/callbacks/test_rollback.py::test_rollback_restores_checkpoint_skips_data_and_finishes",
        ),
    ),
    # uncaught
    Mutation(
        name="Rollback cannot roll back to the checkpoint the run resumed from",
        file="callbacks/rollback.py",
        original="if trainer.ckpt_path and not any(p == str(trainer.ckpt_path) for _, p in self.checkpoints)",
        replacement="if False",
        tests=(
            "tests/callbacks/test_rollback.py",
            "tests/callbacks/test_boundaries.py",
            "tests/callbacks/test_stability_resume.py",
        ),
    ),
    Mutation(
        name="ModelMerger averages last_n_steps + 1 steps",
        file="callbacks/weight_averaging.py",
        original="return range(merge_step - self.last_n_steps + 1, merge_step + 1)",
        replacement="return range(merge_step - self.last_n_steps, merge_step + 1)",
        tests=(
            "tests/callbacks/test_boundaries.py::test_a_run_resumed_inside_the_window_skips_that_merge[6-9.0-False]",
        ),
    ),
    Mutation(
        name="ModelMerger every_n_steps misses a merge at max_steps",
        file="callbacks/weight_averaging.py",
        original="range(first, trainer.max_steps + 1)",
        replacement="range(first, trainer.max_steps)",
        tests=(
            "tests/callbacks/test_boundaries.py::test_every_n_steps_merges_at_each_multiple_up_to_max_steps[12-merges1]",
        ),
    ),
    Mutation(
        name="ModelMerger resumed exactly at a window's start does not skip that merge",
        file="callbacks/weight_averaging.py",
        original="(step >= self._window(m).start and step < m)",
        replacement="(step > self._window(m).start and step < m)",
        tests=(
            "tests/callbacks/test_boundaries.py::test_a_run_resumed_inside_the_window_skips_that_merge[8-None-True]",
        ),
    ),
    Mutation(
        name="a fit ending on max_epochs saves no final checkpoint",
        file="callbacks/checkpoint.py",
        original="if 0 < (trainer.max_epochs or -1) <= trainer.fit_loop.epoch_progress.current.processed:",
        replacement="if 0 < (trainer.max_epochs or -1) < trainer.fit_loop.epoch_progress.current.processed:",
        tests=("tests/callbacks/test_checkpoint.py::test_a_fit_ended_by_max_epochs_saves_its_last_step",),
    ),
    Mutation(
        name="the periodic checkpoint saved at a step that asked for a rollback",
        file="callbacks/checkpoint.py",
        original=(
            "        if requested_restart(trainer) is not None:\n            return\n"
            "        if trainer.global_step == self.started_at:"
        ),
        replacement="        if trainer.global_step == self.started_at:",
        tests=(
            "tests/callbacks/test_boundaries.py::test_a_spike_at_a_checkpoint_step_is_not_saved_and_rolls_back_to_the_one_before",
        ),
    ),
    # uncaught
    Mutation(
        name="report calls a run that logged its last step still running",
        file="olmo2_lit/research/report.py",
        original="last_step + 1 < max_steps",
        replacement="last_step < max_steps",
        tests=(
            "tests/research/test_report.py",
            "tests/test_spike_boundaries.py",
            "tests/options/test_tool_options.py",
        ),
    ),
    # 2. decisions several ranks must agree on
    Mutation(
        name="NonFiniteGuard report holds rank 0's instances only on 2 ranks",
        file="callbacks/nonfinite_guard.py",
        original="if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:",
        replacement="if dist.is_available() and dist.is_initialized() and trainer.world_size > 2:",
        tests=(
            "tests/training/test_one_rank_events.py::test_nan_on_one_rank_stops_both_with_one_report[ddp]",
        ),
    ),
    Mutation(
        name="FSDP v1 grad norm sums the ranks' norms, not their squares",
        file="olmo2_lit/train/grad_norm.py",
        original="return sum_over_ranks(norm.float() ** 2).sqrt()",
        replacement="return sum_over_ranks(norm.float())",
        tests=(
            "tests/training/test_strategy_adapter.py::test_fsdp_v1_sums_the_squared_norms_of_its_shards_over_ranks",
        ),
    ),
    # uncaught
    Mutation(
        name="Preemption exit status from the last signal, not the first",
        file="callbacks/preemption.py",
        original="self.signum = self.signum or signum",
        replacement="self.signum = signum",
        tests=(
            "tests/training/test_preemption.py",
            "tests/callbacks/test_boundaries.py",
            "tests/options/test_callback_options.py",
        ),
    ),
    # uncaught
    Mutation(
        name="Preemption's resume command keeps an old --ckpt_path=... argument",
        file="callbacks/preemption.py",
        original='elif not arg.startswith("--ckpt_path="):',
        replacement="else:",
        tests=(
            "tests/training/test_preemption.py",
            "tests/callbacks/test_boundaries.py",
        ),
    ),
    # 3. non-default options
    Mutation(
        name="a converted scheduler state sets only the first group's LR",
        file="olmo2_lit/train/schedules.py",
        original="for group, lr in zip(self.optimizer.param_groups, self.get_lr()):",
        replacement="for group, lr in zip(self.optimizer.param_groups[:1], self.get_lr()):",
        tests=(
            "tests/training/test_olmo_core_convert.py::test_olmo_core_checkpoint_continues_here_and_back",
        ),
    ),
    # uncaught
    Mutation(
        name="to-olmo-core writes every group at the default group's LR",
        file="olmo2_lit/weights/olmo_core.py",
        original='group = {**group, "lr": step_lr * group["initial_lr"] / peak}',
        replacement='group = {**group, "lr": step_lr}',
        tests=(
            "tests/training/test_olmo_core_convert.py",
            "tests/options/test_tool_options.py",
        ),
    ),
    Mutation(
        name="from-olmo-core data epoch one late",
        file="olmo2_lit/weights/olmo_core.py",
        original='"epoch": loader["epoch"] - 1,  # OLMo-core numbers data epochs from 1',
        replacement='"epoch": loader["epoch"],  # OLMo-core numbers data epochs from 1',
        tests=(
            "tests/training/test_olmo_core_convert.py::test_olmo_core_checkpoint_continues_here_and_back",
        ),
    ),
    Mutation(
        name="DownstreamEval refuses a tokenizer exactly the model's vocab size",
        file="callbacks/downstream_eval.py",
        original="if n > vocab:",
        replacement="if n >= vocab:",
        tests=("tests/options/test_eval_options.py::test_name_and_primary_metric_of_a_task",),
    ),
    Mutation(
        name="a spike flagged on the loss logged as a grad-norm spike and vice versa",
        file="callbacks/spike_monitor.py",
        original="loss_spike, norm_spike = self.detector.last if finite else (False, False)",
        replacement="norm_spike, loss_spike = self.detector.last if finite else (False, False)",
        tests=(
            "tests/callbacks/test_spike_monitor.py::test_injected_spike_is_detected_skipped_and_backs_off_the_lr",
        ),
    ),
    Mutation(
        name="NonFiniteGuard's skip count restarts at 0 on resume",
        file="callbacks/nonfinite_guard.py",
        original='self.skips = state_dict["skips"]',
        replacement="self.skips = 0",
        tests=(
            "tests/callbacks/test_boundaries.py::test_skip_stops_once_max_skips_steps_were_skipped[2-1-False]",
        ),
    ),
    # 4. generation
    Mutation(
        name="stop tail keeps one token less than the longest stop",
        file="olmo2_lit/model/generate.py",
        original="del tail[: -self.keep or len(tail)]",
        replacement="del tail[: -(self.keep - 1) or len(tail)]",
        tests=("tests/model/test_generate.py::test_each_row_of_a_batch_ends_as_it_would_alone[gqa]",),
    ),
    Mutation(
        name="generation can produce a padded-vocab id",
        file="olmo2_lit/model/generate.py",
        original="logits = logits[:, :vocab].float()",
        replacement="logits = logits.float()",
        tests=("tests/model/test_generate.py::test_greedy_matches_transformers_generate[gqa]",),
    ),
    # uncaught
    Mutation(
        name="top-k larger than the vocab fails",
        file="olmo2_lit/model/generate.py",
        original="min(top_k, logits.shape[-1])",
        replacement="top_k",
        tests=(
            "tests/model/test_attention.py",
            "tests/model/test_blocks.py",
            "tests/model/test_compile.py",
            "tests/model/test_config.py",
            "tests/model/test_docs_examples.py",
            "tests/model/test_flops.py",
            "tests/model/test_fused_loss.py",
            "tests/model/test_generate.py",
            "tests/model/test_init.py",
            "tests/model/test_norms_rope.py",
            "tests/eval/test_bits_per_byte.py",
            "tests/eval/test_downstream.py",
            "tests/eval/test_generate_cli.py",
            "tests/eval/test_scoring_dtype.py",
            "tests/options/test_tool_options.py",
        ),
    ),
    Mutation(
        name="KV cache one position short for the last token",
        file="olmo2_lit/model/generate.py",
        original="max_length=min(context, longest + steps - 1)",
        replacement="max_length=min(context, longest + steps - 2)",
        tests=("tests/model/test_generate.py::test_greedy_matches_transformers_generate[mha]",),
    ),
    # uncaught
    Mutation(
        name="generate CLI samples every prompt with the same seed",
        file="olmo2_lit/eval/generate_cli.py",
        original="            seed=seed + i,\n",
        replacement="            seed=seed,\n",
        tests=(
            "tests/eval/test_bits_per_byte.py",
            "tests/eval/test_downstream.py",
            "tests/eval/test_generate_cli.py",
            "tests/eval/test_scoring_dtype.py",
            "tests/options/test_tool_options.py",
        ),
    ),
    Mutation(
        name="generate CLI prints the EOS token's text",
        file="olmo2_lit/eval/generate_cli.py",
        original="if token is None or token == eos_id:",
        replacement="if token is None:",
        tests=("tests/options/test_tool_options.py::test_eos_token_ends_the_continuation_at_that_token",),
    ),
    # uncaught
    Mutation(
        name="generate CLI prints half a UTF-8 character as U+FFFD",
        file="olmo2_lit/eval/generate_cli.py",
        original='if not text.endswith("\\ufffd"):',
        replacement="if True:",
        tests=(
            "tests/eval/test_bits_per_byte.py",
            "tests/eval/test_downstream.py",
            "tests/eval/test_generate_cli.py",
            "tests/eval/test_scoring_dtype.py",
            "tests/options/test_tool_options.py",
        ),
    ),
    Mutation(
        name="generate CLI takes a prompt file's blank lines as prompts",
        file="olmo2_lit/eval/generate_cli.py",
        original=" for n, line in enumerate(lines, 1) if line.strip()]",
        replacement=" for n, line in enumerate(lines, 1)]",
        tests=("tests/eval/test_generate_cli.py::test_generate_native_dir_prints_the_greedy_continuation",),
    ),
    # 5. resume positions not multiples of the batch
    Mutation(
        name="after a sequence-length change the partial instance stays in tokens_seen",
        file="olmo2_lit/data/resume.py",
        original='replayed = state["tokens"] - aligned * sequence_length',
        replacement="replayed = (instances - aligned) * sequence_length",
        tests=(
            "tests/data/test_resume_boundaries.py::test_a_token_position_that_is_not_a_whole_new_instance_is_rounded_down[63-1]",
        ),
    ),
    Mutation(
        name="no warning when a resume replays instances",
        file="olmo2_lit/data/resume.py",
        original="if aligned != instances:",
        replacement="if aligned > instances:",
        tests=(
            "tests/data/test_resume_boundaries.py::test_a_position_is_rounded_down_to_the_micro_step_and_the_rest_replayed[7-4]",
        ),
    ),
    # uncaught
    Mutation(
        name="the configured data seed replaces the checkpoint's on resume",
        file="olmo2_lit/data/resume.py",
        original='    return state["seed"]',
        replacement="    return seed",
        tests=(
            "tests/data/test_resume_boundaries.py",
            "tests/data/test_position.py",
            "tests/data/test_datamodule.py",
            "tests/data/test_sampler.py",
            "tests/options/test_data_options.py",
            "tests/training/test_resume.py",
        ),
    ),
    Mutation(
        name="a converted position resumed under another global batch",
        file="olmo2_lit/data/resume.py",
        original='if state["global_batch_tokens"] != global_batch_tokens:',
        replacement="if False:",
        tests=(
            "tests/training/test_olmo_core_refusals.py::test_sequence_length_and_global_batch_refused_on_resume[global_batch_size-kw1]",
        ),
    ),
    # 6. research tools and the CLI
    # uncaught
    Mutation(
        name="spike counts 0 instead of None for a curve exactly the window long",
        file="olmo2_lit/research/spike_counts.py",
        original="if n <= window:",
        replacement="if n < window:",
        tests=(
            "tests/research/test_compare.py",
            "tests/research/test_plot_envelope.py",
            "tests/research/test_report.py",
            "tests/research/test_spike_counts.py",
            "tests/research/test_study_page.py",
            "tests/research/test_sweep.py",
            "tests/research/test_sweep_bad_input.py",
        ),
    ),
    Mutation(
        name="paper score divided by every value, not the judged ones",
        file="olmo2_lit/research/spike_counts.py",
        original="judged = len(steps) - rules.paper_window",
        replacement="judged = len(steps)",
        tests=(
            "tests/research/test_spike_counts.py::test_counts_equal_feeding_the_rules_one_value_at_a_time[0]",
        ),
    ),
    # uncaught
    Mutation(
        name="spike counts keep a step whose grad norm is not finite",
        file="olmo2_lit/research/spike_counts.py",
        original="finite = np.isfinite(lv) & np.isfinite(gv)",
        replacement="finite = np.isfinite(lv)",
        tests=(
            "tests/research/test_compare.py",
            "tests/research/test_plot_envelope.py",
            "tests/research/test_report.py",
            "tests/research/test_spike_counts.py",
            "tests/research/test_study_page.py",
            "tests/research/test_sweep.py",
            "tests/research/test_sweep_bad_input.py",
        ),
    ),
    # uncaught
    Mutation(
        name="smoothing without TensorBoard's debias",
        file="olmo2_lit/research/stats.py",
        original="out[i] = last / (1 - weight ** (i + 1))",
        replacement="out[i] = last",
        tests=(
            "tests/research/test_compare.py",
            "tests/research/test_plot_envelope.py",
            "tests/research/test_report.py",
            "tests/research/test_spike_counts.py",
            "tests/research/test_study_page.py",
            "tests/research/test_sweep.py",
            "tests/research/test_sweep_bad_input.py",
            "tests/callbacks/test_diagnostics.py",
        ),
    ),
    # uncaught
    Mutation(
        name="Student t CDF with one series term too many for odd df",
        file="olmo2_lit/research/stats.py",
        original="for k in range(1, (df - 1) // 2):",
        replacement="for k in range(1, (df + 1) // 2):",
        tests=(
            "tests/research/test_compare.py",
            "tests/research/test_plot_envelope.py",
            "tests/research/test_report.py",
            "tests/research/test_spike_counts.py",
            "tests/research/test_study_page.py",
            "tests/research/test_sweep.py",
            "tests/research/test_sweep_bad_input.py",
        ),
    ),
    # uncaught
    Mutation(
        name="compare's plot band uses the population std",
        file="olmo2_lit/research/plots.py",
        original="std = ys.std(axis=0, ddof=1)",
        replacement="std = ys.std(axis=0, ddof=0)",
        tests=(
            "tests/research/test_compare.py",
            "tests/research/test_plot_envelope.py",
            "tests/research/test_report.py",
            "tests/research/test_spike_counts.py",
            "tests/research/test_study_page.py",
            "tests/research/test_sweep.py",
            "tests/research/test_sweep_bad_input.py",
        ),
    ),
    Mutation(
        name="a long curve's band drawn from each bucket's first point only",
        file="olmo2_lit/research/plots.py",
        original="np.minimum.reduceat(lo, starts), np.maximum.reduceat(hi, starts)",
        replacement="lo[starts], hi[starts]",
        tests=("tests/research/test_plot_envelope.py::test_a_band_covers_every_point_of_its_run",),
    ),
    # uncaught
    Mutation(
        name="compare's mean curve drawn past the range every seed covers",
        file="olmo2_lit/research/plots.py",
        original="lo, hi = max(x[0] for x, _ in curves), min(x[-1] for x, _ in curves)",
        replacement="lo, hi = min(x[0] for x, _ in curves), max(x[-1] for x, _ in curves)",
        tests=(
            "tests/research/test_compare.py",
            "tests/research/test_plot_envelope.py",
            "tests/research/test_report.py",
            "tests/research/test_spike_counts.py",
            "tests/research/test_study_page.py",
            "tests/research/test_sweep.py",
            "tests/research/test_sweep_bad_input.py",
        ),
    ),
    Mutation(
        name="compare at step N reads the value logged before N",
        file="olmo2_lit/research/compare.py",
        original='i = int(np.searchsorted(xs, position, side="right")) - 1',
        replacement='i = int(np.searchsorted(xs, position, side="left")) - 1',
        tests=("tests/research/test_compare.py::test_table_matches_a_hand_computation",),
    ),
    # uncaught
    Mutation(
        name="compare at a run's last step says the run has not got there",
        file="olmo2_lit/research/compare.py",
        original="if not len(xs) or xs[-1] < position:",
        replacement="if not len(xs) or xs[-1] <= position:",
        tests=(
            "tests/research/test_compare.py",
            "tests/research/test_plot_envelope.py",
            "tests/research/test_report.py",
            "tests/research/test_spike_counts.py",
            "tests/research/test_study_page.py",
            "tests/research/test_sweep.py",
            "tests/research/test_sweep_bad_input.py",
        ),
    ),
    Mutation(
        name="sweep records the first seed's seed in every seed's config",
        file="olmo2_lit/research/sweep.py",
        original='            config["seed_everything"] = cell.seed\n',
        replacement="",
        tests=("tests/research/test_sweep_bad_input.py::test_other_seeds_configs_equal_a_full_parse",),
    ),
    # uncaught
    Mutation(
        name="sweep keeps a finished run whose config the grid changed",
        file="olmo2_lit/research/sweep.py",
        original='if status == "done" and record.get("config") not in (None, config):',
        replacement="if False:",
        tests=(
            "tests/research/test_sweep.py",
            "tests/research/test_sweep_bad_input.py",
        ),
    ),
    # uncaught
    Mutation(
        name="CLI drops the last positional path when no option follows",
        file="olmo2_lit/cli.py",
        original='if a.startswith("-")), len(argv))',
        replacement='if a.startswith("-")), len(argv) - 1)',
        tests=(
            "tests/options/test_tool_options.py",
            "tests/test_soup.py",
            "tests/research/test_compare.py",
            "tests/research/test_plot_envelope.py",
            "tests/research/test_report.py",
            "tests/research/test_spike_counts.py",
            "tests/research/test_study_page.py",
            "tests/research/test_sweep.py",
            "tests/research/test_sweep_bad_input.py",
            "tests/bad_input/test_data_errors.py",
            "tests/bad_input/test_run_errors.py",
            "tests/bad_input/test_tool_errors.py",
            "tests/test_docs_commands.py",
        ),
    ),
    # 7. added after the first runs (more edges)
    # uncaught
    Mutation(
        name="after a rollback the restored checkpoint is no longer a candidate",
        file="callbacks/rollback.py",
        original="self.checkpoints = [(g, p) for g, p in self.checkpoints if g <= restored_step]",
        replacement="self.checkpoints = [(g, p) for g, p in self.checkpoints if g < restored_step]",
        tests=(
            "tests/callbacks/test_rollback.py",
            "tests/callbacks/test_boundaries.py",
            "tests/callbacks/test_stability_resume.py",
        ),
    ),
    # uncaught
    Mutation(
        name="NonFiniteGuard report names the last micro-batch's non-finite modules, not the first",
        file="callbacks/nonfinite_guard.py",
        original="activations = activations or found",
        replacement="activations = found",
        tests=(
            "tests/callbacks/test_nonfinite_guard.py",
            "tests/callbacks/test_boundaries.py",
            "tests/training/test_fit.py::test_nan_loss_stops_naming_the_step",
            "tests/training/test_one_rank_events.py::test_nan_on_one_rank_stops_both_with_one_report[ddp]",
        ),
    ),
    # uncaught
    Mutation(
        name="zero-LR check of a resumed fit counts the steps already taken",
        file="callbacks/housekeeping.py",
        original="steps = 1 if math.isinf(total) else int(total) - trainer.global_step",
        replacement="steps = 1 if math.isinf(total) else int(total)",
        tests=(
            "tests/callbacks/test_zero_lr.py",
            "tests/callbacks/test_boundaries.py",
            "tests/callbacks/test_fragments.py",
        ),
    ),
    Mutation(
        name="PrintSamples refuses a tokenizer exactly the model's vocab size",
        file="callbacks/samples.py",
        original="if size > vocab:",
        replacement="if size >= vocab:",
        tests=(
            "tests/eval/test_generate_cli.py::test_print_samples_callback_prints_cached_greedy_generation",
        ),
    ),
    Mutation(
        name="LRBackoff's multiplier of the next step not restored on resume",
        file="callbacks/lr_backoff.py",
        original='self.since_trigger, self.applied = state_dict["since_trigger"], state_dict["applied"]',
        replacement='self.since_trigger, self.applied = state_dict["since_trigger"], 1.0',
        tests=("tests/callbacks/test_stability_resume.py::test_resume_is_bitwise_with_stability_on",),
    ),
    Mutation(
        name="Ctrl+C after a SIGTERM does not abort",
        file="callbacks/preemption.py",
        original="if signum == signal.SIGINT and self.signum is not None:",
        replacement="if signum == signal.SIGINT and self.signum == signal.SIGINT:",
        tests=("tests/callbacks/test_boundaries.py::test_the_second_ctrl_c_aborts[signals2-True]",),
    ),
    Mutation(
        name="DownstreamEval scores only rank 0's share of the questions on several ranks",
        file="callbacks/downstream_eval.py",
        original="for part_ll, part_dc in gathered:",
        replacement="for part_ll, part_dc in gathered[:1]:",
        tests=(
            "tests/training/test_eval_callbacks.py::test_downstream_eval_on_two_ranks_gathers_every_request",
        ),
    ),
    Mutation(
        name="a converted checkpoint's logging step one late",
        file="olmo2_lit/weights/resumable.py",
        original='{"_batches_that_stepped": max(step - 1, 0)}',
        replacement='{"_batches_that_stepped": step}',
        tests=(
            "tests/training/test_olmo_core_convert.py::test_olmo_core_checkpoint_continues_here_and_back",
        ),
    ),
]

#: AUDIT2 entries no test caught when written, now caught by tests written after them, by others, from the
#: behaviour: the test that catches each.
AUDIT2_CAUGHT_LATER = {
    "Rollback cannot roll back to the checkpoint the run resumed from": (
        "tests/callbacks/test_rollback.py"
        "::test_rollback_added_on_resume_can_roll_back_to_the_checkpoint_resumed_from"
    ),
    "Preemption exit status from the last signal, not the first": (
        "tests/callbacks/test_preemption_details.py::test_the_first_of_two_signals_decides_the_exit_status"
    ),
    "Preemption's resume command keeps an old --ckpt_path=... argument": (
        "tests/callbacks/test_preemption_details.py::test_the_resume_command_holds_only_the_new_checkpoint"
    ),
    "CLI drops the last positional path when no option follows": "tests/test_cli_positionals.py",
    "the configured data seed replaces the checkpoint's on resume": "tests/data/test_saved_seed.py",
}
#: AUDIT2 entries no test caught when written whose bug is now caught through an entry of MUTATIONS
#: above, written with the test that catches it (same file and snippet, under the second-audit headers).
AUDIT2_LISTED_ABOVE = {
    "report calls a run that logged its last step still running",
    "top-k larger than the vocab fails",
    "generate CLI samples every prompt with the same seed",
    "generate CLI prints half a UTF-8 character as U+FFFD",
    "spike counts 0 instead of None for a curve exactly the window long",
    "spike counts keep a step whose grad norm is not finite",
    "smoothing without TensorBoard's debias",
    "Student t CDF with one series term too many for odd df",
    "compare's plot band uses the population std",
    "compare's mean curve drawn past the range every seed covers",
    "compare at a run's last step says the run has not got there",
    "sweep keeps a finished run whose config the grid changed",
    "zero-LR check of a resumed fit counts the steps already taken",
}
#: AUDIT2 entries still not in CI's list, and why.
AUDIT2_OPEN = {
    "after a rollback the restored checkpoint is no longer a candidate": (
        "equivalent: the restarted fit lists the checkpoint it restarts from again (Rollback.on_train_start "
        "adds trainer.ckpt_path), so a second rollback still finds it "
        "(tests/callbacks/test_rollback.py::test_a_second_rollback_can_restore_the_checkpoint_the_first_restored)"
    ),
    "to-olmo-core writes every group at the default group's LR": "no test yet: a run with LR-scaled groups",
    "NonFiniteGuard report names the last micro-batch's non-finite modules, not the first": (
        "no test yet: a NaN in the first micro-batch of two"
    ),
    "the periodic checkpoint saved at a step that asked for a rollback": (
        "caught when written; on the final code its test's saves are the same with and without the check "
        "(the spiked step is still not saved), so another guard covers that step; which one is not yet "
        "identified"
    ),
}
MUTATIONS += [
    replace(m, tests=(AUDIT2_CAUGHT_LATER[m.name],)) if m.name in AUDIT2_CAUGHT_LATER else m
    for m in AUDIT2
    if m.name not in AUDIT2_LISTED_ABOVE and m.name not in AUDIT2_OPEN
]
