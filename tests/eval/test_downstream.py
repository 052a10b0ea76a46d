"""Downstream eval by ranked classification: log-likelihoods against a hand computation, accuracies
against values recorded with ai2-olmo-eval's own code (tests/eval/fixtures/make_olmo_eval_reference.py),
and the task-file errors."""

import gzip
import json
import sys
from pathlib import Path

import pytest
import torch

from olmo2_lit.eval.metrics import task_metrics
from olmo2_lit.eval.scoring import score_instances, tokenize_task
from olmo2_lit.eval.tasks import load_task
from olmo2_lit.shard_format.tokenizer import load_tokenizer

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from make_olmo_eval_reference import MODEL, TASKS, build_model  # noqa: E402

REFERENCE = json.loads((FIXTURES / "olmo_eval_reference.json").read_text())


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    m = build_model()
    # The recorded values belong to this exact seeded init; a changed init must regenerate them.
    assert float(m.embeddings.weight.detach().double().sum()) == pytest.approx(
        REFERENCE["embedding_sum"], abs=1e-9
    )
    return m


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(FIXTURES / "tokenizer.json"))


@pytest.mark.parametrize("name", list(TASKS))
def test_metrics_equal_ai2_olmo_eval(model, tokenizer, name):
    """acc, len_norm and pmi_dc equal what ai2-olmo-eval's OEEvalTask + ICLMetric computed on the same
    model and request files (40 questions each; arc_easy 5-shot has 46 left-truncated requests), and
    ce_loss/bpb match its acc run. Our batching (sorted by length) differs from theirs on purpose."""
    task, variant = TASKS[name]
    t = load_task(str(FIXTURES / "oe_eval_tasks" / task / variant))
    ref = REFERENCE["tasks"][name]
    instances = tokenize_task(t, tokenizer, context_length=MODEL["max_sequence_length"])
    assert len(instances) == ref["n_requests"]
    truncated = sum(
        len(x.query) < len(tokenizer.encode(r.context).ids) + len(x.continuation) - 1
        for x, r in zip(instances, t.requests)
    )
    assert truncated == ref["truncated"]
    ll, dc = score_instances(model, instances, batch_size=8)
    got = task_metrics(instances, ll, dc)
    for metric in ("acc", "len_norm", "pmi_dc"):
        assert got[metric] == pytest.approx(ref[metric][f"{metric}_v1"], abs=1e-6), metric
    assert got["ce_loss"] == pytest.approx(ref["acc"]["ce_loss_v2"], rel=1e-5)
    assert got["bpb"] == pytest.approx(ref["acc"]["bpb_v2"], rel=1e-5)
    # config.json's primary_metric: arc_easy rc_5shot says acc_raw, hellaswag rc_0shot acc_per_char
    assert t.primary_metric == {"arc_easy": "acc", "hellaswag": "len_norm"}[task]


def test_loglikelihoods_equal_a_hand_computation(model, tokenizer):
    """Each choice's score is the sum of log_softmax at its continuation tokens given the (left-
    truncated) context, computed here one unpadded sequence at a time; batching, padding and the
    truncation offsets must not change it."""
    task, variant = TASKS["arc_easy_rc_5shot"]
    t = load_task(str(FIXTURES / "oe_eval_tasks" / task / variant))
    t.requests = t.requests[:24]
    C = MODEL["max_sequence_length"]
    instances = tokenize_task(t, tokenizer, context_length=C)
    ll, dc = score_instances(model, instances, batch_size=5)
    n_truncated = 0
    for i, r in enumerate(t.requests):
        ctx, cont = tokenizer.encode(r.context).ids, tokenizer.encode(r.continuation).ids
        full = (ctx + cont)[-(C + 1) :]
        n_truncated += len(ctx) + len(cont) > C + 1
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([full[:-1]]))[0].double(), -1)
        positions = range(len(full) - 1 - len(cont), len(full) - 1)
        expected = sum(float(logp[p, full[p + 1]]) for p in positions)
        assert ll[i] == pytest.approx(expected, abs=2e-4)
        with torch.no_grad():
            dq = tokenizer.encode(" ").ids + cont
            dlogp = torch.log_softmax(model(torch.tensor([dq[:-1]]))[0].double(), -1)
        d_expected = sum(float(dlogp[p, dq[p + 1]]) for p in range(len(dq) - 1 - len(cont), len(dq) - 1))
        assert dc[instances[i].dc_query] == pytest.approx(d_expected, abs=2e-4)
    assert n_truncated > 0


def test_our_jsonl_format_and_its_errors(tmp_path, tokenizer):
    """Our format gives one request per choice; a malformed line names file and line; a request
    longer than the context with truncation off names the doc and choice."""
    good = tmp_path / "t.jsonl"
    good.write_text(
        '{"context": "Q: 2+2?\\nA:", "choices": [" 4", " 5"], "label": 0}\n\n'
        '{"context": "' + "word " * 300 + '", "choices": [" a", " b", " c"], "label": 2}\n'
    )
    t = load_task(str(good))
    assert [(r.doc_id, r.cont_id, r.label) for r in t.requests] == [
        (0, 0, 0),
        (0, 1, 0),
        (1, 0, 2),
        (1, 1, 2),
        (1, 2, 2),
    ]
    assert t.name == "t" and t.primary_metric == "acc"
    with pytest.raises(
        ValueError,
        match=r"t.jsonl: doc 1 choice 0 has \d+ tokens, longer than the model's "
        r"context of 64; shorten it or set truncate: true",
    ):
        tokenize_task(t, tokenizer, context_length=64, truncate=False)
    assert max(len(x.query) for x in tokenize_task(t, tokenizer, context_length=64)) == 64
    bad = tmp_path / "bad.jsonl"
    for line, message in [
        ('{"context": "x", "choices": [" a", " b"]}', r"bad.jsonl line 2: missing field 'label'"),
        (
            '{"context": "x", "choices": [" a", " b"], "label": 2}',
            r"bad.jsonl line 2: label must be an index",
        ),
        ("{not json", r"bad.jsonl line 2: not JSON"),
    ]:
        bad.write_text('{"context": "x", "choices": [" a", " b"], "label": 1}\n' + line + "\n")
        with pytest.raises(ValueError, match=message):
            load_task(str(bad))


def test_oe_eval_file_errors(tmp_path):
    """A broken request line in an oe-eval file names the file and line; a missing file names the dir."""
    folder = tmp_path / "task" / "rc_0shot"
    folder.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no requests.jsonl.gz or requests.jsonl"):
        load_task(str(folder))
    ok = {
        "request_type": "loglikelihood",
        "doc_id": 0,
        "idx": 0,
        "label": 0,
        "request": {"context": "a", "continuation": " b"},
    }
    broken = {k: v for k, v in ok.items() if k != "request"}
    with gzip.open(folder / "requests.jsonl.gz", "wt") as f:
        f.write(json.dumps(ok) + "\n" + json.dumps(broken) + "\n")
    with pytest.raises(ValueError, match=r"requests.jsonl.gz line 2: missing or malformed field 'request'"):
        load_task(str(folder))


def test_exported_model_scores_the_same_in_transformers(model, tokenizer, tmp_path):
    """Export the model to an HF directory, load it with transformers' Olmo2ForCausalLM, and score
    OLMo's arc_easy 5-shot requests (truncated ones included) with it: every choice's log-likelihood
    and the accuracies equal ours."""
    transformers = pytest.importorskip("transformers")
    from olmo2_lit.weights.export import export_hf

    export_hf(model, model.config, tmp_path / "hf", dtype="float32", eos_token_id=0, pad_token_id=0)
    hf = transformers.Olmo2ForCausalLM.from_pretrained(tmp_path / "hf").eval()

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hf = hf

        def forward(self, ids):
            return self.hf(input_ids=ids).logits

    task, variant = TASKS["arc_easy_rc_5shot"]
    t = load_task(str(FIXTURES / "oe_eval_tasks" / task / variant))
    instances = tokenize_task(t, tokenizer, context_length=MODEL["max_sequence_length"])
    ours = score_instances(model, instances, batch_size=8)
    theirs = score_instances(Logits(), instances, batch_size=8)
    assert ours[0].keys() == theirs[0].keys()
    for i in ours[0]:
        assert ours[0][i] == pytest.approx(theirs[0][i], abs=1e-4)
    for key in ours[1]:
        assert ours[1][key] == pytest.approx(theirs[1][key], abs=1e-4)
    for metric in ("acc", "len_norm", "pmi_dc"):
        assert task_metrics(instances, *ours)[metric] == task_metrics(instances, *theirs)[metric]
