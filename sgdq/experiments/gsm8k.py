"""GSM8K (Cobbe et al. 2021) for experiment 2: loading, checking and chat formatting.

``load_gsm8k(source, split)`` takes

* a directory holding ``train.jsonl`` and ``test.jsonl`` (the tests and CI use
  ``../shared/data/gsm8k``),
* a single ``.jsonl`` file, or
* anything else, as a hub id for ``datasets.load_dataset`` (e.g. ``openai/gsm8k`` with the
  config ``main``).

Every record must hold a ``question`` and an ``answer`` whose last line is ``#### <number>``;
malformed input stops with an error naming the file and the line.

Formatting (:func:`encode`): the question is the user turn and the answer the assistant turn
of the model's chat template. By default the loss falls on the answer's tokens only (the
paper does not say; ``answer_only_loss=False`` trains on the whole sequence). Sequences
longer than ``max_length`` (2048 in Table III) are cut at the right, so the prompt is kept
whole and the end of the answer is lost; the number of cut examples is recorded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .config import local_or_hub

FINAL = re.compile(r"####\s*(-?[\d,]*\.?\d+)\s*$")
NUMBER = re.compile(r"-?[\d,]*\.?\d+")


class GSM8KFormatError(ValueError):
    """A GSM8K file that does not hold what it should (names the file and line)."""


def final_number(answer: str) -> str | None:
    """The number after the final ``####`` of a reference answer, without thousands commas."""
    m = FINAL.search(answer.strip().splitlines()[-1] if answer.strip() else "")
    return m.group(1).replace(",", "") if m else None


def predicted_number(text: str) -> str | None:
    """The model's final answer: the number after its last ``####``, else its last number."""
    if "####" in text:
        m = NUMBER.search(text.rsplit("####", 1)[1])
        if m:
            return m.group(0).replace(",", "").rstrip(".")
    nums = NUMBER.findall(text)
    return nums[-1].replace(",", "").rstrip(".") if nums else None


def _same_number(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    try:
        return abs(float(a) - float(b)) < 1e-9
    except ValueError:
        return a == b


def read_jsonl(path: Path) -> list[dict]:
    """Read and check one GSM8K JSONL file."""
    path = Path(path)
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise GSM8KFormatError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise GSM8KFormatError(f"{path}:{lineno}: expected a JSON object with 'question' and 'answer'")
            for key in ("question", "answer"):
                if not isinstance(rec.get(key), str) or not rec[key].strip():
                    raise GSM8KFormatError(f"{path}:{lineno}: missing or empty '{key}'")
            if final_number(rec["answer"]) is None:
                raise GSM8KFormatError(f"{path}:{lineno}: the answer does not end with a '#### <number>' line")
            records.append({"question": rec["question"], "answer": rec["answer"]})
    if not records:
        raise GSM8KFormatError(f"{path}: the file is empty")
    return records


def load_gsm8k(source: str | Path, split: str = "train", config: str = "main") -> list[dict]:
    """GSM8K records (``question``, ``answer``) from a directory, a file or the hub."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = Path(source).expanduser()
    if path.is_dir():
        file = path / f"{split}.jsonl"
        if not file.exists():
            raise FileNotFoundError(f"{path} has no {split}.jsonl; a GSM8K directory holds train.jsonl and test.jsonl")
        return read_jsonl(file)
    if path.is_file():
        # one file is one split: a file named for the other split, or an unnamed file asked for
        # the test split, would silently evaluate on the training data (or train on the test set)
        other = "test" if split == "train" else "train"
        if path.name.startswith(other) or (split == "test" and not path.name.startswith("test")):
            raise ValueError(f"{path} is a single file, which cannot serve as the {split} split too (the same problems "
                             "would be trained on and evaluated); pass a directory holding train.jsonl and test.jsonl")
        return read_jsonl(path)
    local_or_hub(source, "GSM8K data (pass a directory with train.jsonl/test.jsonl, a .jsonl file, or a hub id)")
    try:
        import datasets

        ds = datasets.load_dataset(str(source), config, split=split)
    except Exception as exc:  # offline, unknown id, ...
        raise FileNotFoundError(
            f"could not load GSM8K {source!r} (config {config!r}) from the hub: {type(exc).__name__}: {exc}. "
            "Without hub access, pass the path of a directory holding train.jsonl and test.jsonl "
            "(e.g. ../shared/data/gsm8k)") from None
    return [{"question": r["question"], "answer": r["answer"]} for r in ds]


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool


def chat_messages(question: str, answer: str | None = None) -> list[dict]:
    msgs = [{"role": "user", "content": question}]
    if answer is not None:
        msgs.append({"role": "assistant", "content": answer})
    return msgs


def _ids(tokenizer, messages, **kw) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, **kw)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def encode(tokenizer, question: str, answer: str, max_length: int = 2048, answer_only_loss: bool = True) -> Encoded:
    """Token ids and labels of one example (labels −100 where no loss falls)."""
    prompt = _ids(tokenizer, chat_messages(question), add_generation_prompt=True)
    full = _ids(tokenizer, chat_messages(question, answer))
    if full[: len(prompt)] != prompt:
        raise ValueError("the chat template does not extend the prompt with the answer; cannot mask the prompt")
    labels = ([-100] * len(prompt) + full[len(prompt):]) if answer_only_loss else list(full)
    truncated = len(full) > max_length
    return Encoded(full[:max_length], labels[:max_length], truncated)


def is_correct(generated: str, reference_answer: str) -> bool:
    """Exact match of the final number."""
    return _same_number(predicted_number(generated), final_number(reference_answer))
