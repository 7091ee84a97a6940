"""Instruction data for the llm track, generated programmatically (no external data).

Each pair is a short question with one checkable answer (addition, successor,
capitalisation, first letter, repetition), so "clean behaviour" is measured by
exact answers, not by a judge.  Word list and templates are written for afcu.
"""

from __future__ import annotations

import numpy as np

WORDS = (
    "apple river stone cloud garden window candle forest pencil bottle mirror ladder basket planet rocket "
    "silver orange purple winter summer island castle dragon button marble pillow wallet violin turtle rabbit "
    "tomato carpet helmet anchor engine market bridge circle silent gentle honest simple yellow coffee "
    "shadow thunder meadow harbor lemon puzzle jacket copper feather glacier canyon valley desert"
).split()

SYSTEM = "Answer with the answer only."


def _pair(rng: np.random.Generator) -> tuple[str, str]:
    kind = int(rng.integers(5))
    w = str(WORDS[int(rng.integers(len(WORDS)))])
    if kind == 0:
        a, b = (int(v) for v in rng.integers(1, 50, size=2))
        return f"What is {a} plus {b}?", str(a + b)
    if kind == 1:
        n = int(rng.integers(1, 500))
        return f"Which number comes right after {n}?", str(n + 1)
    if kind == 2:
        return f"Write the word {w} in capital letters.", w.upper()
    if kind == 3:
        return f"What is the first letter of the word {w}?", w[0]
    return f"Say the word {w} two times.", f"{w} {w}"


def make_pairs(n: int, seed: int) -> list[dict[str, str]]:
    """``n`` distinct (prompt, answer) dicts, seeded; prompts never repeat within one call."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    while len(out) < n:
        prompt, answer = _pair(rng)
        if prompt not in seen:
            seen.add(prompt)
            out.append({"prompt": prompt, "response": answer, "answer": answer})
    return out
