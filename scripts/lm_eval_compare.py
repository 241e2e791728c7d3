"""Scores a model folder with lm-evaluation-harness's Hugging Face backend (HFLM) and with
`deno task eval` on the same JSONL task files, and prints every item on which they disagree:
its prompt text, a candidate's log-likelihood (beyond --tolerance), or an outcome (acc, acc_norm,
MC2). Exits 1 when any item disagrees.

    python3 -m venv /tmp/venvlm
    /tmp/venvlm/bin/pip install torch transformers datasets tokenizers sentencepiece \\
        sacrebleu scikit-learn accelerate more-itertools
    /tmp/venvlm/bin/pip install --no-deps lm-eval==0.4.13
    deno task inherit --reference models/stories260K/model.gguf --layers 5 --out /tmp/s260
    /tmp/venvlm/bin/python scripts/lm_eval_compare.py --model /tmp/s260 \\
        --task tests/fixtures/tasks/piqa.jsonl --task tests/fixtures/tasks/hellaswag.jsonl

Few-shot: --num-fewshot K, with --fewshot-file FILE (one per --task, in order) as the harness's
training split (MMLU's dev split), else the task file's own items (the harness's fewshot_split set
to the evaluated split, so that it leaves each item out of its own examples).

Each task file is handed to the harness as the `json` dataset of the harness's own task YAML
(its prompt, choices, target, metrics, sampler and splits unchanged): the format is recognised by
its columns as `deno task eval` recognises it; an MMLU file is one subject's task, named by its
`subject` column. lm-eval 0.4.13 imports a few packages that the multiple-choice tasks never call
(`evaluate`, `sqlitedict`, `word2number`, `pytablewriter`, `rouge_score`): those not installed are
stubbed with empty modules. The model runs in float32 on the CPU.
"""
import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Progress bars of datasets, the harness and transformers off: the report is the output.
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
# Packages lm-eval 0.4.13 (or a task's utils.py) imports, with the submodules imported from them.
STUBBED = {
    "evaluate": [],
    "sqlitedict": [],
    "word2number": ["w2n"],
    "pytablewriter": [],
    "rouge_score": ["rouge_scorer", "scoring"],
}


def stub_missing(folder):
    """Empty packages for the harness's imports that log-likelihood tasks do not use."""
    missing = [m for m in STUBBED if importlib.util.find_spec(m) is None]
    for m in missing:
        os.mkdir(os.path.join(folder, m))
        for name in ["__init__", *STUBBED[m]]:
            open(os.path.join(folder, m, name + ".py"), "w").close()
    sys.path.insert(0, folder)
    return missing


# The harness task YAML (under lm_eval/tasks) of a file whose first item has all these columns,
# tried in order as `deno task eval` recognises the formats.
HARNESS_TASKS = [
    (("endings",), "hellaswag/hellaswag.yaml"),
    (("goal", "sol1"), "piqa/piqa.yaml"),
    (("answerKey",), "arc/arc_easy.yaml"),
    (("sentence", "option1"), "winogrande/default.yaml"),
    (("pronoun_loc",), "wsc273/default.yaml"),
    (("passage",), "super_glue/boolq/default.yaml"),
    (("context", "options"), "logiqa/logiqa.yaml"),
    (("mc1_targets",), "truthfulqa/truthfulqa_mc1.yaml"),
    (("question", "choices", "answer"), "mmlu/default/mmlu_{subject}.yaml"),
    (("text",), "lambada/lambada_openai.yaml"),
]


def harness_task(first):
    """The harness task YAML of a JSONL file's first item, by its columns."""
    for columns, yaml in HARNESS_TASKS:
        if all(c in first for c in columns):
            return yaml.format(**first)
    raise SystemExit(f"no harness task reads the columns {sorted(first)}")


def load_yaml_keys(path):
    """The split keys of a harness YAML and the ones it includes (the last one set wins)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: None)
    with open(path) as f:
        config = yaml.load(f, Loader=Loader) or {}
    if "include" in config:
        base = load_yaml_keys(os.path.join(os.path.dirname(path), config["include"]))
        base.update(config)
        config = base
    return config


def task_configs(args, tasks_dir, out_dir):
    """One YAML per task file (two for TruthfulQA: MC1 and MC2), each including the harness's own."""
    names = []
    for i, path in enumerate(args.task):
        with open(path) as f:
            first = json.loads(f.readline())
        rel = harness_task(first)
        yamls = [rel, rel.replace("mc1", "mc2")] if "truthfulqa" in rel else [rel]
        for rel in yamls:
            source = os.path.join(tasks_dir, rel)
            own = load_yaml_keys(source)
            evaluated = "test" if own.get("test_split") else "validation"
            name = f"cmp{i}_{os.path.basename(rel)[:-5]}"
            files = {evaluated: os.path.abspath(path)}
            lines = [f"include: {source}", f"task: {name}", "dataset_path: json", "dataset_name: null"]
            lines.append("training_split: null")
            if args.fewshot_file:
                # The examples' split as the harness's own: MMLU's dev, the others' training split.
                pool = own.get("fewshot_split") or "train"
                files[pool] = os.path.abspath(args.fewshot_file[i])
                if pool == "train":
                    lines.append("training_split: train")
            elif evaluated == "test":
                # Examples from the evaluated split, each item left out (fewshot_split == test_split).
                lines.append("fewshot_split: test")
            if evaluated == "validation":
                lines += ["validation_split: validation", "test_split: null"]
            lines.append("dataset_kwargs:\n  data_files:")
            lines += [f"    {split}: {json.dumps(file)}" for split, file in files.items()]
            with open(os.path.join(out_dir, name + ".yaml"), "w") as f:
                f.write("\n".join(lines) + "\n")
            names.append((path, name))
    return names


def run_deno(args, samples):
    cmd = ["deno", "run", "-A", "--unstable-ffi", "cli.ts", "eval", "--model", args.model, "--tasks", *args.task]
    cmd += ["--samples", samples, "--num-fewshot", str(args.num_fewshot), "--fewshot-seed", str(args.fewshot_seed)]
    if args.fewshot_file:
        cmd += ["--fewshot-file", *args.fewshot_file]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"deno task eval failed:\n{done.stderr}")
    print(done.stdout.strip())
    by_task = {}
    with open(samples) as f:
        for line in f:
            s = json.loads(line)
            by_task.setdefault(s["task"], {})[s["line"]] = s
    return by_task


def doc_lines(path):
    """The 1-based line of each document (the harness numbers the non-blank lines from 0)."""
    with open(path) as f:
        return [i + 1 for i, line in enumerate(f) if line.strip()]


def compare(harness, ours, kind, tolerance):
    """Disagreements of one task: (doc_id, line, message) for each item that differs."""
    out = []
    for h in sorted(harness, key=lambda s: s["doc_id"]):
        line = h["line"]
        o = ours.get(line)
        if o is None:
            out.append((h["doc_id"], line, "not scored by deno task eval"))
            continue
        pairs, lls = (o["mc2_pairs"], o["mc2_logprobs"]) if kind == "mc2" else (o["pairs"], o["logprobs"])
        h_pairs = [list(a) for a in h["arguments"]]
        h_lls = [r[0] for r in h["filtered_resps"]]
        if pairs != h_pairs:
            k = next(i for i in range(len(pairs)) if i >= len(h_pairs) or pairs[i] != h_pairs[i])
            out.append((h["doc_id"], line, f"candidate {k} text differs: ours {pairs[k]!r}, harness {h_pairs[k]!r}"))
            continue
        for k, (a, b) in enumerate(zip(lls, h_lls)):
            if not abs(a - b) <= tolerance:
                out.append((h["doc_id"], line, f"candidate {k} log-likelihood {a:.4f}, harness {b:.4f}"))
        metrics = [("mc2", "acc")] if kind == "mc2" else [("acc", "acc"), ("acc_norm", "acc_norm")]
        for mine, theirs in metrics:
            # acc and acc_norm are 0 or 1; MC2 is a probability, as close as the log-likelihoods.
            close = tolerance if mine == "mc2" else 0
            if mine in o and theirs in h and not math.isclose(o[mine], h[theirs], abs_tol=close):
                out.append((h["doc_id"], line, f"{mine} {o[mine]}, harness {h[theirs]}"))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a Hugging Face model folder (written by this project)")
    p.add_argument("--task", action="append", required=True, help="a JSONL task file (repeatable)")
    p.add_argument("--num-fewshot", type=int, default=0)
    p.add_argument("--fewshot-file", action="append", help="examples of the task in the same position")
    p.add_argument("--fewshot-seed", type=int, default=1234)
    p.add_argument("--tolerance", type=float, default=2e-3, help="largest |log-likelihood difference|")
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args()
    if args.fewshot_file and len(args.fewshot_file) != len(args.task):
        raise SystemExit("--fewshot-file: one per --task")

    with tempfile.TemporaryDirectory() as tmp:
        stubbed = stub_missing(tmp)
        if stubbed:
            print(f"stubbed with empty modules (unused by log-likelihood tasks): {', '.join(stubbed)}")
        ours = run_deno(args, os.path.join(tmp, "samples.jsonl"))

        import lm_eval
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        tasks_dir = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")
        configs = os.path.join(tmp, "tasks")
        os.mkdir(configs)
        names = task_configs(args, tasks_dir, configs)
        lm = HFLM(pretrained=args.model, dtype="float32", device="cpu", batch_size=args.batch_size)
        results = simple_evaluate(
            model=lm,
            tasks=[n for _, n in names],
            task_manager=TaskManager(include_path=configs, include_defaults=False),
            num_fewshot=args.num_fewshot,
            fewshot_random_seed=args.fewshot_seed,
            log_samples=True,
        )

    bad = 0
    for path, name in names:
        task = os.path.basename(path)[:-6]
        kind = "mc2" if name.endswith("_mc2") else "mc1"
        lines = doc_lines(path)
        harness = [dict(s, line=lines[s["doc_id"]]) for s in results["samples"][name]]
        disagreements = compare(harness, ours.get(task, {}), kind, args.tolerance)
        h = results["results"][name]
        ours_items = list(ours.get(task, {}).values())
        deltas = [
            abs(a - r[0])
            for s in harness
            if s["line"] in ours.get(task, {})
            for a, r in zip(
                ours[task][s["line"]]["mc2_logprobs" if kind == "mc2" else "logprobs"], s["filtered_resps"]
            )
        ]
        metric = "mc2" if kind == "mc2" else "acc"
        mine = sum(o.get(metric, 0) for o in ours_items) / max(1, len(ours_items))
        print(
            f"{task} ({name[name.index('_') + 1:]}, {args.num_fewshot}-shot): {len(harness)} items, "
            f"{len(disagreements)} disagreements, max |Δ log-likelihood| {max(deltas, default=0):.2e}; "
            f"{metric} ours {mine:.4f}, harness {h.get('acc,none', float('nan')):.4f}"
            + (
                f"; acc_norm ours {sum(o['acc_norm'] for o in ours_items) / len(ours_items):.4f}, "
                f"harness {h['acc_norm,none']:.4f}"
                if "acc_norm,none" in h and ours_items and "acc_norm" in ours_items[0]
                else ""
            )
        )
        for doc_id, line, message in disagreements:
            print(f"  doc {doc_id} (line {line}): {message}")
        bad += len(disagreements)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
