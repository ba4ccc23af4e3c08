#!/usr/bin/env python3
"""Reference fixtures for KiteRL's losses, advantages and batch scheduling, computed by slime itself.

The script imports slime's own functions from a checkout of THUDM/slime and runs them on CPU in float64
(`torch.compile` disabled), so the expected values are slime's, not a re-derivation:
  - `slime.backends.megatron_utils.loss.policy_loss_function` and `loss_function` (with the log-prob /
    entropy forward replaced by leaf tensors, so autograd gives d loss / d log-prob and d loss / d entropy),
    `cp_utils.get_sum_of_sample_mean`, `vanilla_tis_function`;
  - `slime.utils.ppo_utils.compute_approx_kl`, `get_grpo_returns`, `get_reinforce_plus_plus_returns`,
    `get_reinforce_plus_plus_baseline_advantages`; `slime.utils.distributed_utils.distributed_masked_whiten`;
  - `slime.utils.seqlen_balancing` (`karmarkar_karp`, `first_fit_pack`, `expand_bins_by_splitting`) and
    `slime.utils.dp_schedule.build_dp_schedule`.
Megatron is replaced by a stub that reports one context-parallel rank; `torch.distributed.all_reduce` by
the identity (one process). `RolloutManager._post_process_rewards` lives in a Ray actor, so its 15 lines
are mirrored below (`post_process_rewards`), in float32 as slime computes.

Usage: SLIME_SRC=/path/to/slime-checkout python3 scripts/reference/rl_core.py
(the checkout is the directory that contains `slime/`; tested with slime 624b824a8, torch 2.x).
Writes Tests/Fixtures/rl/{losses,advantages,schedules}.json.
"""

import argparse
import json
import math
import os
import random
import sys
import types
from pathlib import Path

os.environ["TORCHDYNAMO_DISABLE"] = "1"

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

SLIME_SRC = os.environ.get("SLIME_SRC", "/tmp/slime")
OUT = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "rl"


class FakeMPU(types.ModuleType):
    dp_size = 1

    def get_context_parallel_world_size(self):
        return 1

    def get_data_parallel_world_size(self, with_context_parallel=False):
        return FakeMPU.dp_size

    def is_pipeline_last_stage(self):
        return True

    def get_tensor_model_parallel_group(self):
        return None

    def get_context_parallel_group(self):
        return None

    def get_context_parallel_rank(self):
        return 0


def import_slime():
    sys.path.insert(0, SLIME_SRC)
    mpu = FakeMPU("megatron.core.mpu")
    core = types.ModuleType("megatron.core")
    core.mpu = mpu
    megatron = types.ModuleType("megatron")
    megatron.core = core
    sys.modules.update({"megatron": megatron, "megatron.core": core, "megatron.core.mpu": mpu})
    http_utils = types.ModuleType("slime.utils.http_utils")
    http_utils.is_port_available = lambda *a, **k: True
    sys.modules["slime.utils.http_utils"] = http_utils
    import slime.backends  # noqa: F401

    package = types.ModuleType("slime.backends.megatron_utils")
    package.__path__ = [os.path.join(SLIME_SRC, "slime", "backends", "megatron_utils")]
    sys.modules["slime.backends.megatron_utils"] = package
    import importlib

    loss = importlib.import_module("slime.backends.megatron_utils.loss")
    cp_utils = importlib.import_module("slime.backends.megatron_utils.cp_utils")
    ppo = importlib.import_module("slime.utils.ppo_utils")
    dist_utils = importlib.import_module("slime.utils.distributed_utils")
    balancing = importlib.import_module("slime.utils.seqlen_balancing")
    schedule = importlib.import_module("slime.utils.dp_schedule")
    return loss, cp_utils, ppo, dist_utils, balancing, schedule


LOSS, CP, PPO, DIST, BAL, SCHED = import_slime()
dist.all_reduce = lambda tensor, op=None, group=None: None  # one process: the all-reduce is the identity


# ---------------------------------------------------------------------------------------------------------
# Losses


def loss_args(opts):
    return argparse.Namespace(
        advantage_estimator=opts.get("advantage_estimator", "grpo"),
        eps_clip=opts.get("eps_clip", 0.2),
        eps_clip_high=opts.get("eps_clip_high", opts.get("eps_clip", 0.2)),
        eps_clip_c=opts.get("eps_clip_c"),
        use_kl_loss=opts.get("use_kl_loss", False),
        kl_loss_coef=opts.get("kl_loss_coef", 0.0),
        kl_loss_type=opts.get("kl_loss_type", "k1"),
        use_unbiased_kl=opts.get("use_unbiased_kl", False),
        entropy_coef=opts.get("entropy_coef", 0.0),
        use_tis=opts.get("use_tis", False),
        tis_clip=opts.get("tis_clip", 2.0),
        tis_clip_low=opts.get("tis_clip_low", 0.0),
        calculate_per_token_loss=opts.get("calculate_per_token_loss", False),
        get_mismatch_metrics=False,
        custom_tis_function_path=None,
        custom_pg_loss_reducer_function_path=None,
        use_opsm=False,
        use_rollout_logprobs=False,
        rollout_top_p=1.0,
        rollout_temperature=1.0,
        loss_type="policy_loss",
        recompute_loss_function=False,
        allgather_cp=False,
        log_probs_chunk_size=-1,
    )


def split(values, lengths, requires_grad=False):
    flat = torch.tensor(values, dtype=torch.float64, requires_grad=requires_grad)
    return flat, list(flat.split(lengths))


def slime_microbatch_loss(opts, mb, normalization, num_microbatches, dp_size):
    """One micro-batch through slime's loss_function; returns this micro-batch's share of the step."""
    args = loss_args(opts)
    lengths = mb["response_lengths"]
    logp_flat, logp = split(mb["log_probs"], lengths, requires_grad=True)
    ent_flat, ent = split(mb["entropy"], lengths, requires_grad=True)

    def fake_forward(logits, **kwargs):
        return torch.empty(0), {"log_probs": logp, "entropy": ent}

    LOSS.get_log_probs_and_entropy = fake_forward
    FakeMPU.dp_size = dp_size
    batch = {
        "advantages": split(mb["advantages"], lengths)[1],
        "log_probs": split(mb["old_log_probs"], lengths)[1],
        "response_lengths": lengths,
        "total_lengths": [length + 3 for length in lengths],
        "unconcat_tokens": [None] * len(lengths),
        "loss_masks": split(mb["loss_mask"], lengths)[1],
        "rollout_mask_sums": [torch.tensor(float(d), dtype=torch.float64) for d in mb["sample_denominators"]],
    }
    if mb.get("ref_log_probs") is not None:
        batch["ref_log_probs"] = split(mb["ref_log_probs"], lengths)[1]
    if mb.get("rollout_log_probs") is not None:
        batch["rollout_log_probs"] = split(mb["rollout_log_probs"], lengths)[1]
    logits = torch.zeros(1, 1, 1, dtype=torch.float64)
    if normalization["kind"] == "per_sample":
        B = normalization["global_batch_size"]
        scaled, _, log = LOSS.loss_function(args, batch, num_microbatches, B, logits)
        # Megatron divides by the micro-batch count and averages gradients over the DP ranks.
        share = scaled / num_microbatches / dp_size
        denominator = B
    else:
        N = normalization["total_tokens"]
        scaled, _, log = LOSS.loss_function(args, batch, num_microbatches, 0, logits)
        # Megatron all-reduces the token counts and divides the summed gradients by them.
        share = scaled / N
        denominator = N
    share.backward()
    metrics = {key: float(value) / denominator for key, value in zip(log["keys"], log["values"][1:].tolist())}
    return {
        "loss": float(share),
        "metrics": metrics,
        "d_log_probs": logp_flat.grad.tolist() if logp_flat.grad is not None else [0.0] * len(mb["log_probs"]),
        "d_entropy": ent_flat.grad.tolist() if ent_flat.grad is not None else [0.0] * len(mb["entropy"]),
    }


def random_microbatch(rng, lengths, *, with_ref, with_rollout, special=False):
    n = sum(lengths)
    logp = [-rng.uniform(0.05, 3.0) for _ in range(n)]
    old = [lp + rng.gauss(0, 0.3) for lp in logp]
    if special:
        # Ties and extremes: ratio exactly 1, far outside the clip range, and large KL.
        for t in range(0, n, 5):
            old[t] = logp[t]
        for t in range(1, n, 7):
            old[t] = logp[t] - 1.5
        for t in range(2, n, 7):
            old[t] = logp[t] + 1.5
    ref = [lp + rng.gauss(0, 0.5) for lp in logp] if with_ref else None
    if ref is not None and special:
        for t in range(3, n, 6):
            ref[t] = logp[t] + 3.0  # exp(-Δ) − 1 + Δ > 10 with Δ = −3: low_var_kl clamps
    rollout = [o + rng.gauss(0, 0.4) for o in old] if with_rollout else None
    advantages = []
    for length in lengths:
        a = rng.choice([rng.gauss(0, 1), 0.0, -1.3, 0.7])
        advantages += [a] * length
    if special and n > 4:
        advantages[4] = -2.0
    mask = [1.0 if rng.random() > 0.2 else 0.0 for _ in range(n)]
    entropy = [rng.uniform(0.0, 4.0) for _ in range(n)]
    denominators = []
    offset = 0
    for length in lengths:
        denominators.append(int(sum(mask[offset : offset + length])))
        offset += length
    return {
        "response_lengths": lengths,
        "log_probs": logp,
        "old_log_probs": old,
        "ref_log_probs": ref,
        "rollout_log_probs": rollout,
        "entropy": entropy,
        "advantages": advantages,
        "loss_mask": mask,
        "sample_denominators": denominators,
    }


def loss_cases():
    rng = random.Random(1234)
    option_sets = [
        ("ppo_default", {}),
        ("ppo_asymmetric_clip", {"eps_clip": 0.2, "eps_clip_high": 0.28}),
        ("dual_clip", {"eps_clip": 0.2, "eps_clip_high": 0.28, "eps_clip_c": 3.0}),
        ("dual_clip_tight", {"eps_clip": 0.1, "eps_clip_c": 1.05}),
        ("per_token", {"calculate_per_token_loss": True, "eps_clip_high": 0.28}),
        ("entropy", {"entropy_coef": 0.01}),
        ("kl_k1", {"use_kl_loss": True, "kl_loss_coef": 0.1, "kl_loss_type": "k1"}),
        ("kl_k2", {"use_kl_loss": True, "kl_loss_coef": 0.1, "kl_loss_type": "k2"}),
        ("kl_k3", {"use_kl_loss": True, "kl_loss_coef": 0.1, "kl_loss_type": "k3"}),
        ("kl_low_var", {"use_kl_loss": True, "kl_loss_coef": 0.5, "kl_loss_type": "low_var_kl"}),
        ("kl_low_var_unbiased", {"use_kl_loss": True, "kl_loss_coef": 0.5, "kl_loss_type": "low_var_kl", "use_unbiased_kl": True}),
        ("kl_k3_unbiased_per_token", {"use_kl_loss": True, "kl_loss_coef": 0.2, "kl_loss_type": "k3", "use_unbiased_kl": True, "calculate_per_token_loss": True}),
        ("tis", {"use_tis": True}),
        ("tis_low_clip", {"use_tis": True, "tis_clip": 1.5, "tis_clip_low": 0.5, "eps_clip_c": 3.0}),
        ("gspo", {"advantage_estimator": "gspo", "eps_clip": 3e-4, "eps_clip_high": 4e-4}),
        ("gspo_wide", {"advantage_estimator": "gspo", "eps_clip": 0.2}),
        ("gspo_tis_kl_entropy", {"advantage_estimator": "gspo", "eps_clip": 0.1, "use_tis": True, "use_kl_loss": True, "kl_loss_coef": 0.05, "kl_loss_type": "low_var_kl", "entropy_coef": 0.003}),
        ("cispo", {"advantage_estimator": "cispo", "eps_clip": 1.0, "eps_clip_high": 0.28}),
        ("everything_per_token", {"eps_clip_high": 0.28, "eps_clip_c": 2.5, "use_tis": True, "use_kl_loss": True, "kl_loss_coef": 0.01, "kl_loss_type": "low_var_kl", "entropy_coef": 0.001, "calculate_per_token_loss": True}),
    ]
    layouts = [[5, 0, 9, 3], [12], [0, 0], [7, 1, 16]]
    cases = []
    for index, (name, opts) in enumerate(option_sets):
        for j, lengths in enumerate(layouts):
            special = j % 2 == 0
            mb = random_microbatch(rng, lengths, with_ref=True, with_rollout=True, special=special)
            if not opts.get("use_kl_loss"):
                mb["ref_log_probs"] = None
            if j == 3 and not opts.get("use_tis"):
                mb["rollout_log_probs"] = None
            if opts.get("calculate_per_token_loss"):
                normalization = {"kind": "per_token", "total_tokens": sum(max(int(sum(mb["loss_mask"][o : o + l])), 1) for o, l in offsets(lengths)) + 11}
            else:
                normalization = {"kind": "per_sample", "global_batch_size": len(lengths) + 2}
            expected = slime_microbatch_loss(opts, mb, normalization, num_microbatches=3, dp_size=2)
            tolerance = 2e-6 if opts.get("use_kl_loss") else 1e-10  # compute_approx_kl casts to float32
            cases.append({"name": f"{name}/{j}", "options": opts, "input": mb, "normalization": normalization, "expected": expected, "tolerance": tolerance})
    return cases


def offsets(lengths):
    out, start = [], 0
    for length in lengths:
        out.append((start, length))
        start += length
    return out


def kl_cases():
    """compute_approx_kl values and autograd gradients, every type, with and without the IS ratio."""
    deltas = [-12.0, -3.0, -2.4, -1.0, -0.3, 0.0, 0.2, 1.0, 2.5, 9.0]
    cases = []
    for kind in ["k1", "k2", "k3", "low_var_kl"]:
        for unbiased in [False, True]:
            logp = torch.tensor([-1.0 - 0.01 * i for i in range(len(deltas))], dtype=torch.float64, requires_grad=True)
            ref = (logp.detach() - torch.tensor(deltas, dtype=torch.float64))
            old = logp.detach() + 0.25
            ratio = torch.exp(logp - old) if unbiased else None
            kl = PPO.compute_approx_kl(logp, ref, kl_loss_type=kind, importance_ratio=ratio)
            kl.sum().backward()
            cases.append({
                "type": kind, "unbiased": unbiased,
                "log_probs": logp.detach().tolist(), "ref_log_probs": ref.tolist(), "old_log_probs": old.tolist(),
                "values": kl.detach().double().tolist(), "gradients": logp.grad.tolist(),
            })
    return cases


def policy_loss_token_cases():
    """compute_policy_loss on single tokens, with autograd through the ratio."""
    cases = []
    for eps_c in [None, 3.0]:
        for a in [1.5, -1.5, 0.0, -0.4]:
            for r in [0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.28, 1.5, 4.0]:
                ratio = torch.tensor([r], dtype=torch.float64, requires_grad=True)
                ppo_kl = -torch.log(ratio)
                loss, clip = PPO.compute_policy_loss(ppo_kl, torch.tensor([a], dtype=torch.float64), 0.2, 0.28, eps_clip_c=eps_c)
                loss.sum().backward()
                cases.append({"ratio": r, "advantage": a, "eps_clip_c": eps_c, "loss": float(loss), "clipped": bool(clip[0] > 0), "d_ratio": float(ratio.grad)})
    return cases


# ---------------------------------------------------------------------------------------------------------
# Advantages


def post_process_rewards(raw, estimator, n, rbs, rewards_normalization=True, grpo_std_normalization=True):
    """Mirror of RolloutManager._post_process_rewards (slime/ray/rollout.py), float32 as slime."""
    if n == 1:
        grpo_std_normalization = False  # slime/utils/arguments.py
    if estimator in ["grpo", "gspo", "cispo", "reinforce_plus_plus_baseline"] and rewards_normalization:
        rewards = torch.tensor(raw, dtype=torch.float)
        if rewards.shape[-1] == n * rbs:
            rewards = rewards.reshape(-1, n)
        else:
            rewards = rewards.view(-1, rewards.shape[-1])
        mean = rewards.mean(dim=-1, keepdim=True)
        rewards = rewards - mean
        if estimator in ["grpo", "gspo", "cispo"] and grpo_std_normalization:
            std = rewards.std(dim=-1, keepdim=True)
            rewards = rewards / (std + 1e-6)
        return rewards.flatten().tolist()
    return list(raw)


def advantage_cases():
    rng = random.Random(99)
    group_cases = []
    specs = [
        ("grpo", [1, 0, 0, 1, 1, 1, 1, 1, 0.5, 0.25, 0.0, 1.0], 4, 3, True, True),
        ("grpo", [1, 1, 1, 1, 0, 0, 0, 0], 4, 2, True, True),  # groups whose rewards all agree
        ("grpo", [1, 0, 1, 1, 0, 1], 3, 2, True, False),  # --disable-grpo-std-normalization
        ("grpo", [1, 0, 1, 1, 0], 3, 2, True, True),  # count != n·rbs: one global group
        ("grpo", [0.3, -0.2, 0.9], 1, 3, True, True),  # n = 1: std off
        ("gspo", [-1.0, 1.0, 1.0, -1.0, -1.0, -1.0], 2, 3, True, True),
        ("cispo", [2.0, 5.0, 7.0], 3, 1, True, True),
        ("reinforce_plus_plus_baseline", [1, 0, 0, 1, 1, 0], 3, 2, True, True),
        ("reinforce_plus_plus", [1, 0, 0.5], 3, 1, True, True),
        ("grpo", [1, 0, 0, 1], 2, 2, False, True),  # --disable-rewards-normalization
    ]
    for estimator, raw, n, rbs, norm, std in specs:
        raw = [float(x) for x in raw]
        group_cases.append({"estimator": estimator, "raw": raw, "n_samples_per_prompt": n, "rollout_batch_size": rbs,
                            "rewards_normalization": norm, "grpo_std_normalization": std,
                            "expected": post_process_rewards(raw, estimator, n, rbs, norm, std)})

    estimator_cases = []
    for estimator, kl_coef, gamma, normalize, lengths in [
        ("grpo", 0.0, 1.0, False, [3, 5, 1]),
        ("grpo", 0.0, 1.0, True, [3, 5, 1]),
        ("gspo", 0.0, 1.0, True, [4, 2]),
        ("reinforce_plus_plus", 0.05, 1.0, True, [3, 6, 2]),
        ("reinforce_plus_plus", 0.1, 0.9, True, [200, 7, 129]),  # crosses slime's 128-token scan chunks
        ("reinforce_plus_plus", 0.0, 0.95, False, [5, 4]),
        ("reinforce_plus_plus_baseline", 0.05, 1.0, True, [4, 4, 3]),
        ("reinforce_plus_plus_baseline", 0.0, 1.0, False, [2, 3]),
    ]:
        rewards = [rng.choice([1.0, 0.0, -0.5, 0.25]) for _ in lengths]
        masks = [[1 if rng.random() > 0.25 else 0 for _ in range(l)] for l in lengths]
        for m in masks:
            m[rng.randrange(len(m))] = 1  # REINFORCE++ requires an unmasked token
        logp = [[-rng.uniform(0.1, 2.0) for _ in range(l)] for l in lengths]
        ref = [[x + rng.gauss(0, 0.3) for x in row] for row in logp]
        kl_type = "k3" if estimator == "reinforce_plus_plus_baseline" else "k1"
        kl = [PPO.compute_approx_kl(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), kl_loss_type=kl_type).double()
              if kl_coef != 0 else torch.zeros(len(a), dtype=torch.float64) for a, b in zip(logp, ref)]
        mask_t = [torch.tensor(m, dtype=torch.float64) for m in masks]
        if estimator in ["grpo", "gspo"]:
            returns = PPO.get_grpo_returns(torch.tensor(rewards, dtype=torch.float64), kl)
            advantages = list(returns)
        elif estimator == "reinforce_plus_plus":
            returns = PPO.get_reinforce_plus_plus_returns(torch.tensor(rewards, dtype=torch.float64), kl, mask_t, lengths, [l + 4 for l in lengths], kl_coef, gamma)
            advantages = list(returns)
        else:
            advantages = PPO.get_reinforce_plus_plus_baseline_advantages(torch.tensor(rewards, dtype=torch.float64), kl, mask_t, kl_coef)
            returns = advantages
        if normalize:
            flat = DIST.distributed_masked_whiten(torch.cat(advantages), torch.cat(mask_t), shift_mean=True)
            advantages = list(flat.split(lengths))
        estimator_cases.append({
            "estimator": estimator, "kl_coef": kl_coef, "kl_type": kl_type, "gamma": gamma, "normalize_advantages": normalize,
            "rewards": rewards, "response_lengths": lengths, "loss_masks": masks, "log_probs": logp, "ref_log_probs": ref,
            "advantages": [a.tolist() for a in advantages], "returns": [r.tolist() for r in returns],
        })
    return group_cases, estimator_cases


# ---------------------------------------------------------------------------------------------------------
# Scheduling


FLOPS = {"hidden_size": 16, "num_attention_heads": 2, "num_query_groups": 2, "vocab_size": 32, "ffn_hidden_size": 64,
         "num_experts": None, "num_layers": 2, "kv_channels": 8}
FLOPS_MOE = {"hidden_size": 64, "num_attention_heads": 4, "num_query_groups": 1, "vocab_size": 1000, "ffn_hidden_size": 256,
             "num_experts": 8, "moe_ffn_hidden_size": 32, "moe_router_topk": 2, "moe_shared_expert_intermediate_size": 48,
             "moe_layer_freq": [0, 1, 1], "num_layers": 3, "kv_channels": 16}


def schedule_cases():
    rng = random.Random(7)
    cases = []
    configs = [
        dict(dynamic=True, max_tokens=64, dp=1, balance=False),
        dict(dynamic=True, max_tokens=64, dp=2, balance=False),
        dict(dynamic=True, max_tokens=64, dp=2, balance=True),
        dict(dynamic=True, max_tokens=40, dp=4, balance=True),
        dict(dynamic=True, max_tokens=1000, dp=4, balance=True),  # one bin → split to 4
        dict(dynamic=True, max_tokens=30, dp=2, balance=False, cp=2),
        dict(dynamic=True, max_tokens=50, dp=2, balance=True, vpp=2, mb_group=2),
        dict(dynamic=False, mbs=2, dp=2, balance=False),
        dict(dynamic=False, mbs=1, dp=4, balance=True),
        dict(dynamic=True, max_tokens=64, dp=2, balance=True, by_flops=True),
        dict(dynamic=True, max_tokens=48, dp=2, balance=True, moe=True),
    ]
    for index, config in enumerate(configs):
        for variant in range(3):
            n_rollouts = 16
            lengths, ids = [], []
            for r in range(n_rollouts):
                fanout = 2 if (variant == 2 and r % 3 == 0) else 1  # compact rollouts: siblings share an id
                for _ in range(fanout):
                    lengths.append(rng.choice([5, 8, 12, 17, 23, 31, 44, 70]) if variant != 1 else 10)
                    ids.append(100 + r)
            if variant == 2:
                order = list(range(len(lengths)))
                rng.shuffle(order)
                lengths = [lengths[i] for i in order]
                ids = [ids[i] for i in order]
            gbs = 8 if variant != 1 else 5  # variant 1 drops trailing rollouts
            model = FLOPS_MOE if config.get("moe") else FLOPS
            args = types.SimpleNamespace(
                micro_batch_size=config.get("mbs", 1), use_dynamic_batch_size=config["dynamic"],
                max_tokens_per_gpu=config.get("max_tokens"), balance_data=config["balance"],
                balance_by_flops=config.get("by_flops", False), **model)
            layout = {"dp_size": config["dp"], "cp_size": config.get("cp", 1), "vpp_size": config.get("vpp", 1),
                      "microbatch_group_size_per_vp_stage": config.get("mb_group", 1)}
            try:
                partitions, mbi, num_mbs, gbss = SCHED.build_dp_schedule(args, layout, lengths, global_batch_size=gbs, rollout_indices=ids)
                expected = {"partitions": partitions, "micro_batch_indices": mbi, "num_microbatches": num_mbs, "global_batch_sizes": gbss}
            except AssertionError as error:
                expected = {"error": str(error)}
            cases.append({"name": f"config{index}/variant{variant}", "config": config, "model": model, "total_lengths": lengths,
                          "rollout_ids": ids, "global_batch_size": gbs, "expected": expected})
    return cases


def kk_cases():
    rng = random.Random(3)
    cases = []
    for trial in range(24):
        k = rng.choice([2, 3, 4])
        count = k * rng.randint(1, 6)
        if trial % 3 == 0:
            weights = [rng.choice([5, 5, 8, 8, 13]) for _ in range(count)]  # many ties
        else:
            weights = [rng.randint(1, 200) for _ in range(count)]
        equal = trial % 2 == 0
        cases.append({"weights": weights, "k": k, "equal_size": equal,
                      "karmarkar_karp": BAL.karmarkar_karp(weights, k, equal),
                      "balanced": BAL.get_seqlen_balanced_partitions(weights, k, equal) if count >= k else None})
    fits = []
    for trial in range(10):
        lengths = [rng.randint(1, 60) for _ in range(rng.randint(1, 25))]
        cap = rng.choice([30, 50, 64])
        bins = BAL.first_fit_pack(lengths, cap)
        target = len(bins) + rng.randint(0, 4)
        expanded = [list(b) for b in bins]
        BAL.expand_bins_by_splitting(expanded, target, lengths)
        fits.append({"lengths": lengths, "capacity": cap, "bins": bins, "target": target, "expanded": expanded})
    flops = []
    for model in [FLOPS, FLOPS_MOE]:
        args = types.SimpleNamespace(**model)
        from slime.utils.flops_utils import calculate_fwd_flops
        flops.append({"model": model, "lengths": [1, 7, 64, 1000, 32768], "flops": [float(calculate_fwd_flops([s], args)) for s in [1, 7, 64, 1000, 32768]]})
    return cases, fits, flops


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    losses = {"microbatches": loss_cases(), "kl": kl_cases(), "policy_tokens": policy_loss_token_cases()}
    group_cases, estimator_cases = advantage_cases()
    kk, fits, flops = kk_cases()
    write(OUT / "losses.json", losses)
    write(OUT / "advantages.json", {"group_normalization": group_cases, "estimators": estimator_cases})
    write(OUT / "schedules.json", {"dp_schedules": schedule_cases(), "karmarkar_karp": kk, "first_fit": fits, "flops": flops})


def write(path, value):
    def clean(x):
        if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
            raise ValueError(f"non-finite value in {path}")
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    path.write_text(json.dumps(clean(value), separators=(",", ":")) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
