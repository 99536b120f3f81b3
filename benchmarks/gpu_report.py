"""The GPU check's report: markdown tables made from its results file alone, re-made at will.

    python -m benchmarks.gpu_check report RESULTS.jsonl [--markdown FILE]
    python -m benchmarks.gpu_check append FILE.md [--to BENCHMARKS.md]

`benchmarks.gpu_check run` (the orchestration) and its workers (benchmarks.gpu_workers) write
one JSON object per line to DIR/results.jsonl as they go; this module reads nothing else, so a
report can be rendered again from saved results, after the machine is gone. The records, by
`kind`:

- machine: mode ("gpu" or "cpu-tiny"), date, gpu (nvidia-smi) or cpu, python, budget_s;
- meta (one per worker): framework, versions {package: version}, device, precision;
- row: framework, variant, model, task, batch, dtype, status ("ok", "skipped", "failed"),
  and when ok images_per_s and first_s (the first call, compilation included), else reason;
- phase (one per worker): name, framework, variants, rows (those it was given), status
  ("ran", "killed", "failed", "skipped"), reason, seconds;
- error: framework, reason (what stopped a worker);
- tests: backend, status, summary (pytest's last line), seconds;
- note: text; finished: seconds.

The targets are read off the rows: the training step at the largest training batch and
inference at the largest inference batch, SKNet-50 in mixed bfloat16 (on the GPU: batches 128
and 256).

`append` writes the section into BENCHMARKS.md in place of the section of the same title, so
BENCHMARKS.md keeps the latest GPU check (and, apart, the latest CPU dry run, whose title differs).
"""

import json

from benchmarks.gpu_workers import log

BF16, F32 = "mixed_bfloat16", "float32"
MODEL_NAMES = {"sknet50": "SKNet-50", "resnext50": "ResNeXt-50"}
# The sections' titles in BENCHMARKS.md: a GPU run replaces the GPU section, a dry run its own.
TITLE = "GPU: SKNet-50 on Keras-JAX and Keras-PyTorch against timm (benchmarks/gpu_check.sh)"
DRY_RUN_TITLE = "GPU check dry run on a CPU at tiny sizes (benchmarks/gpu_check.sh --cpu-tiny)"
# Column order of the table: (framework, variant, heading).
COLUMNS = (
    ("keras-jax", "xla", "Keras-JAX (XLA)"),
    ("keras-torch", "eager", "Keras-torch"),
    ("timm", "eager", "timm eager"),
    ("timm", "channels_last", "timm channels_last"),
    ("timm", "compile", "timm compile"),
)


def load(path):
    """The records of a results file, in order."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def row_key(model, task, batch, dtype):
    return model, task, int(batch), dtype


def collect(records):
    """{(framework, variant, row_key): the row's record}, where a phase's unmeasured rows get a
    record saying why (killed, skipped or failed phase)."""
    cells = {}
    for record in records:
        if record["kind"] == "row":
            key = (
                record["framework"],
                record["variant"],
                row_key(*(record[k] for k in ("model", "task", "batch", "dtype"))),
            )
            cells[key] = record
    errors = {r["framework"]: r["reason"] for r in records if r["kind"] == "error"}
    for record in records:
        if record["kind"] != "phase":
            continue
        for row in record["rows"]:
            for variant in record["variants"]:
                key = (record["framework"], variant, row_key(*row))
                if key in cells:
                    continue
                if record["status"] == "killed":
                    reason = "not reached: the worker was stopped at its deadline"
                elif record["status"] == "failed" and record["framework"] in errors:
                    reason = errors[record["framework"]]
                else:
                    reason = record.get("reason") or "not reached"
                cells[key] = dict(
                    status="failed" if record["status"] == "failed" else "skipped", reason=reason
                )
    return cells


def speed(cell):
    """Images per second of an ok cell, else None."""
    if cell and cell.get("status") == "ok":
        return cell["images_per_s"]
    return None


def format_speed(cell):
    if cell is None:
        return "-"
    if cell.get("status") != "ok":
        return cell["status"]
    value = cell["images_per_s"]
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def format_ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def timm_best(cells, key):
    """The fastest timm variant at this row: (images/s, variant) or (None, None)."""
    best = (None, None)
    for variant in ("eager", "channels_last", "compile"):
        value = speed(cells.get(("timm", variant, key)))
        if value is not None and (best[0] is None or value > best[0]):
            best = (value, variant)
    return best


def ratio(numerator, denominator):
    if numerator is None or denominator is None:
        return None
    return numerator / denominator


def render(records):
    """The markdown section: header, ratio table, targets, backend tests, what was skipped."""
    machine = next((r for r in records if r["kind"] == "machine"), {})
    metas = {r["framework"]: r for r in records if r["kind"] == "meta"}
    cells = collect(records)
    tiny = machine.get("mode") != "gpu"
    keys = sorted({key for (_, _, key) in cells}, key=table_order)
    lines = [
        f"## {DRY_RUN_TITLE if tiny else TITLE}",
        "",
        header_line(machine, metas, records),
        "",
    ]
    if tiny:
        lines += [
            "A dry run on a CPU with tiny nets and inputs: the numbers only show that every path runs.",
            "",
        ]
    headings = [heading for _, _, heading in COLUMNS]
    lines += [
        "| model | task | batch | dtype | " + " | ".join(headings) + " | timm best | Keras-JAX / timm best "
        "| Keras-torch / timm best | Keras-JAX first call (s) |",
        "|---|---|---:|---|" + "---:|" * (len(COLUMNS) + 4),
    ]
    for key in keys:
        model, task, batch, dtype = key
        row = [cells.get((framework, variant, key)) for framework, variant, _ in COLUMNS]
        best, best_variant = timm_best(cells, key)
        jax_cell = cells.get(("keras-jax", "xla", key))
        first = f"{jax_cell['first_s']:.1f}" if speed(jax_cell) is not None else "-"
        lines.append(
            f"| {MODEL_NAMES[model]} | {task} | {batch} | {dtype} | "
            + " | ".join(format_speed(cell) for cell in row)
            + f" | {best_variant or '-'} | {format_ratio(ratio(speed(jax_cell), best))} | "
            f"{format_ratio(ratio(speed(cells.get(('keras-torch', 'eager', key))), best))} | {first} |"
        )
    lines += [
        "",
        "Images per second (higher is better); a ratio above 1.00x is faster than timm's fastest "
        "variant at that row. bf16 = Keras `mixed_bfloat16` / `torch.autocast(bfloat16)`; float32 "
        "runs each framework's default precision (" + precision_note(metas) + ").",
        "",
    ]
    lines += targets_table(cells, keys, tiny)
    lines += tests_table(records)
    lines += skipped_list(cells, keys, records)
    return "\n".join(lines) + "\n"


def table_order(key):
    model, task, batch, dtype = key
    return (list(MODEL_NAMES).index(model), dtype != BF16, task != "train", -batch)


def header_line(machine, metas, records):
    versions = {}
    for meta in metas.values():
        versions.update(meta.get("versions", {}))
    finished = next((r["seconds"] for r in records if r["kind"] == "finished"), None)
    where = machine.get("gpu") or machine.get("cpu", "unknown machine")
    devices = sorted({meta.get("device", "") for meta in metas.values()} - {""})
    parts = [
        machine.get("date", ""),
        where,
        f"seen as {'; '.join(devices)}" if devices else "",
        f"Python {machine.get('python', '?')}",
        ", ".join(f"{name} {value}" for name, value in sorted(versions.items())),
        f"budget {machine.get('budget_s', '?')}s, took {finished}s"
        if finished is not None
        else "did not finish",
    ]
    return "; ".join(part for part in parts if part) + "."


def precision_note(metas):
    notes = []
    for framework in ("keras-jax", "timm", "keras-torch"):
        meta = metas.get(framework)
        if meta and meta.get("precision"):
            notes.append(f"{framework}: {meta['precision']}")
    return "; ".join(notes) or "not recorded"


def target_batches(keys):
    """(training batch, inference batch) of the targets: the largest of each among SKNet-50's rows."""
    train = [batch for model, task, batch, _ in keys if model == "sknet50" and task == "train"]
    infer = [batch for model, task, batch, _ in keys if model == "sknet50" and task == "infer"]
    return (max(train) if train else None), (max(infer) if infer else None)


def targets_table(cells, keys, tiny):
    """The issue's targets, each with the measured ratio and whether it holds."""
    train_batch, big = target_batches(keys)
    train_key = ("sknet50", "train", train_batch, BF16)
    infer_key = ("sknet50", "infer", big, BF16)
    infer_f32 = ("sknet50", "infer", big, F32)

    def against_timm(key):
        return ratio(speed(cells.get(("keras-jax", "xla", key))), timm_best(cells, key)[0])

    def resnext(key):
        return ("resnext50", *key[1:])

    def jax_overhead(key):  # SKNet-50's time over ResNeXt-50's
        return ratio(
            speed(cells.get(("keras-jax", "xla", resnext(key)))), speed(cells.get(("keras-jax", "xla", key)))
        )

    def timm_overhead(key):
        return ratio(timm_best(cells, resnext(key))[0], timm_best(cells, key)[0])

    def verdict(value, goal, sense):
        if value is None:
            return "not measured"
        if tiny:
            return "(dry run)"
        return "met" if (value >= goal if sense == ">=" else value <= goal) else "MISSED"

    train, infer = f"{BF16}, batch {train_batch}", f"{BF16}, batch {big}"
    targets = [
        (f"Keras-JAX SKNet-50 training step, {train} / timm best", against_timm(train_key), ">="),
        (f"Keras-JAX SKNet-50 inference, {infer} / timm best", against_timm(infer_key), ">="),
        (f"Keras-JAX SKNet-50 inference, {F32}, batch {big} / timm best", against_timm(infer_f32), ">="),
        (
            f"SK overhead, Keras-JAX training step, {train} (SKNet-50 time / ResNeXt-50 time)",
            jax_overhead(train_key),
            "<=",
        ),
        (f"SK overhead, Keras-JAX inference, {infer}", jax_overhead(infer_key), "<="),
    ]
    lines = ["| target | measured | goal | verdict |", "|---|---:|---:|---|"]
    for label, value, sense in targets:
        goal = 1.0 if sense == ">=" else 1.3
        lines.append(
            f"| {label} | {format_ratio(value)} | {sense} {goal:.1f}x | {verdict(value, goal, sense)} |"
        )
    for label, key in (("training step", train_key), ("inference", infer_key)):
        lines.append(
            f"| for comparison: timm's own SK overhead, {label}, {BF16} (best variants) "
            f"| {format_ratio(timm_overhead(key))} | | |"
        )
    lines.append("")
    return lines


def tests_table(records):
    tests = [r for r in records if r["kind"] == "tests"]
    if not tests:
        return []
    lines = ["| backend tests | result | seconds |", "|---|---|---:|"]
    for record in tests:
        summary = record["summary"].replace("|", "/")
        lines.append(f"| {record['backend']} | {record['status']}: {summary} | {record['seconds']} |")
    return lines + [""]


def skipped_list(cells, keys, records):
    """What was not measured and why (one line per column and reason); phase times; notes."""
    reasons, planned = {}, {}
    for framework, variant, heading in COLUMNS:
        for key in keys:
            cell = cells.get((framework, variant, key))
            if cell is None:
                continue
            planned[heading] = planned.get(heading, 0) + 1
            if cell.get("status") != "ok":
                reasons.setdefault((heading, cell["status"], cell.get("reason", "")), []).append(key)
    lines = []
    for (heading, status, reason), missed in reasons.items():
        if len(missed) == planned[heading]:
            which = "every row"
        else:
            which = ", ".join(f"{MODEL_NAMES[m]} {task} {batch} {dtype}" for m, task, batch, dtype in missed)
        lines.append(f"- {heading}, {which}: {status}: {reason}")
    phases = [r for r in records if r["kind"] == "phase"]
    notes = [r["text"] for r in records if r["kind"] == "note"]
    out = []
    if lines:
        out += ["Not measured:", "", *lines, ""]
    if phases:
        out.append(
            "Steps: "
            + ", ".join(f"{r['name']} {r['status']} ({r['seconds']}s)" for r in phases)
            + (". " + ". ".join(notes) if notes else "")
            + ". Each time is the median over rounds of several calls with one device "
            "synchronisation per round, after warm-up; inputs on the device."
        )
        out.append("")
    return out


def section_title(markdown):
    """The title of a section made by `render` (its first line, without "## ")."""
    first = markdown.split("\n", 1)[0]
    if not first.startswith("## ") or first[3:] not in (TITLE, DRY_RUN_TITLE):
        raise ValueError(
            f"Not a table made by the GPU check: it starts with {first[:80]!r}; accepted: "
            f"'## {TITLE}' or '## {DRY_RUN_TITLE}'"
        )
    return first[3:]


def append(markdown_path, to):
    """Writes a table made by `run` or `report` into BENCHMARKS.md (atomically).

    The section takes the place of the section of the same title (the previous run of the
    same kind); without one, it is appended. Other sections are kept as they are.

    Args:
        markdown_path: a gpu_check.md, as `run` or `report` wrote it.
        to: the BENCHMARKS.md to update.

    Example:
        >>> append("out/gpu_check.md", "BENCHMARKS.md")  # doctest: +SKIP
    """
    # Imported here: the GPU machine imports this module (through gpu_check) without them.
    from benchmarks.common import replace_section
    from keras_sknet.utils.files import atomic_path

    with open(markdown_path) as f:
        section = f.read().strip() + "\n"
    title = section_title(section)
    with open(to) as f:
        old = f.read()
    with atomic_path(to) as tmp, open(tmp, "w") as f:
        f.write(replace_section(old, title, section))
    log(f"wrote the section '{title}' of {markdown_path} into {to}")
