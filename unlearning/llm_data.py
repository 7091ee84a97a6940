"""Instruction data for the llm track, generated programmatically (no external data).

Each pair is a short word task with one checkable answer: copy a word, write it in
capitals, write it in lowercase, say it twice, give its first letter.  These are tasks a
small instruction model can learn exactly from a few hundred pairs, so "clean behaviour"
(Acc_retain) is measured by exact answers, not by a judge, and sits well above zero
(arithmetic, used earlier, left the fine-tuned 135M model at 25%).  103 distinct words x 5
kinds give 515 distinct prompts.  Word list and templates are written for afcu.
"""

from __future__ import annotations

import numpy as np

WORDS = (
    "apple river stone cloud garden window candle forest pencil bottle mirror ladder basket planet rocket "
    "silver orange purple winter summer island castle dragon button marble pillow wallet violin turtle rabbit "
    "tomato carpet helmet anchor engine market bridge circle silent gentle honest simple yellow coffee "
    "shadow thunder meadow harbor lemon puzzle jacket copper feather glacier canyon valley desert "
    "kitten parrot donkey monkey tiger spider lizard falcon salmon oyster walnut pepper garlic cherry "
    "banana melon carrot onion potato cookie muffin butter cheese noodle sugar honey pickle ticket "
    "rubber paper cotton velvet denim marble granite silk leather wooden frozen golden hidden broken "
    "narrow bright quiet rapid humble"
).split()

SYSTEM = "Answer with the answer only."
KINDS = ("copy", "upper", "lower", "twice", "first_letter")


def _pair(kind: str, w: str) -> tuple[str, str]:
    if kind == "copy":
        return f"Repeat this word: {w}", w
    if kind == "upper":
        return f"Write the word {w} in capital letters.", w.upper()
    if kind == "lower":
        return f"Write the word {w.upper()} in lowercase letters.", w
    if kind == "twice":
        return f"Say the word {w} two times.", f"{w} {w}"
    return f"What is the first letter of the word {w}?", w[0]


def make_pairs(n: int, seed: int) -> list[dict[str, str]]:
    """``n`` distinct (prompt, answer) dicts in a seeded order; prompts never repeat within one call."""
    combos = [(k, w) for k in KINDS for w in dict.fromkeys(WORDS)]
    if n > len(combos):
        raise ValueError(f"make_pairs: {n} pairs requested, only {len(combos)} distinct prompts exist")
    order = np.random.default_rng(seed).permutation(len(combos))[:n]
    out = []
    for i in order:
        prompt, answer = _pair(*combos[int(i)])
        out.append({"prompt": prompt, "response": answer, "answer": answer})
    return out
