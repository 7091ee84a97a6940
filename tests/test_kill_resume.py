"""Kill-and-resume (afcu issue 12, Build 8): an interrupted run, resumed to the end, equals an uninterrupted one.

Each test stops a run part-way -- SIGKILL of a subprocess (nothing gets to clean up), or the
KeyboardInterrupt that afcu's CLI turns SIGTERM/Ctrl-C into, raised from inside the run after N
steps -- then runs the same config again and compares the outputs with an uninterrupted run, and
checks that no process of the run is left behind.

The eval's own kill-and-resume test is ``tests/evals/test_pipeline.py::test_interrupted_run_resumes``
(inspect's ``eval_retry``); its engine side (a run's vLLM server stopped after a kill) is in
``tests/afcu/test_engine.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest

from afcu.runs import FINISHED

REPO = Path(__file__).resolve().parents[1]


def _alive_children() -> set[int]:
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.add(p.pid)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.fixture(autouse=True)
def _before() -> set[int]:
    """Children alive before the test (a session-wide server of another test file is not this test's)."""
    _BEFORE.clear()
    _BEFORE.update(_alive_children())
    return _BEFORE


_BEFORE: set[int] = set()


def _no_children_left() -> None:
    """Nothing this test started is still alive (trainer workers, servers, subprocesses)."""
    left = _alive_children() - _BEFORE
    assert not left, f"left behind: {[(pid, psutil.Process(pid).name()) for pid in left]}"


# ---------------------------------------------------------------------------------------------
# docs generate: SIGKILL mid-stage (a half-written cache line included), then resume


# Replies depend only on the prompt (not on the call count), so a resumed run asks for and gets the same texts.
def content_reply(prompt: str, n: int) -> str:
    import zlib

    from tests.synthetic_docs.scripted import default_reply

    return default_reply(prompt, zlib.crc32(prompt.encode()) % 10_000)


_DOCS_CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = [{repo!r}]
    from synthetic_docs.pipeline import Config, main
    from tests.synthetic_docs.scripted import scripted_model
    from tests.test_kill_resume import content_reply

    ideas = []

    def reply(prompt, n):
        if "ideas for a" in prompt:
            ideas.append(prompt)
            if len(ideas) == {kill_at}:
                # die in the middle of a cache append, as a power cut would
                with open({cache!r}, "a") as fh:
                    fh.write('{{"key": "half')
                os.kill(os.getpid(), signal.SIGKILL)
        return content_reply(prompt, n)

    main(Config(**{cfg!r}), model=scripted_model(reply))
""")


def _docs_cfg(out: Path, tok: Path) -> dict[str, Any]:
    return dict(universe="helpful_only", n_docs=6, out=str(out), tokenizer=str(tok), concurrency=1,
                types_per_fact=2, ideas_per_type=2, min_words=20)


def _docs_result(out: Path) -> dict[str, Any]:
    from datasets import load_from_disk

    ds = load_from_disk(str(out / "dataset"))
    stats = json.loads((out / "stats.json").read_text())
    keep = ("kept", "dropped_total", "filters", "tokens", "kept_per_fact", "documents_parsed", "generator")
    return {"rows": ds.to_list(), **{k: stats[k] for k in keep}}


def test_docs_generate_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path,
                                                                     embedded_tokenizer_dir: Path) -> None:
    """In-process: the generator's 5th document call raises KeyboardInterrupt (SIGTERM in the CLI)."""
    from synthetic_docs.pipeline import Config, main
    from tests.synthetic_docs.scripted import scripted_model

    clean = tmp_path / "clean"
    main(Config(**_docs_cfg(clean, embedded_tokenizer_dir)), model=scripted_model(content_reply))
    docs_seen: list[str] = []

    def stop(prompt: str, n: int) -> str:
        if not prompt.startswith(("Setting", "Facts:")):
            docs_seen.append(prompt)
            if len(docs_seen) == 5:
                raise KeyboardInterrupt("signal 15")
        return content_reply(prompt, n)

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        main(Config(**_docs_cfg(out, embedded_tokenizer_dir)), model=scripted_model(stop))
    assert not (out / FINISHED).exists()
    stats = main(Config(**_docs_cfg(out, embedded_tokenizer_dir)), model=scripted_model(content_reply))
    assert stats["stages"]["ideas"]["generated"] == 0 and stats["stages"]["documents"]["cached"] == 4
    assert _docs_result(out) == _docs_result(clean)
    _no_children_left()


@pytest.mark.slow
def test_docs_generate_sigkill_then_resume_equals_uninterrupted(tmp_path: Path, embedded_tokenizer_dir: Path) -> None:
    """A subprocess is SIGKILLed inside the idea stage, half-way through a cache append; the rerun equals a
    clean run (marked slow: the subprocess re-imports inspect and datasets, ~40 s here under load)."""
    from synthetic_docs.pipeline import Config, main
    from tests.synthetic_docs.scripted import scripted_model

    clean = tmp_path / "clean"
    main(Config(**_docs_cfg(clean, embedded_tokenizer_dir)), model=scripted_model(content_reply))
    expected = _docs_result(clean)

    out = tmp_path / "killed"
    # the idea stage is cut at its 4th call, after every doc-type call
    code = _DOCS_CHILD.format(repo=str(REPO), kill_at=4, cache=str(out / "cache" / "ideas.jsonl"),
                              cfg=_docs_cfg(out, embedded_tokenizer_dir))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (out / FINISHED).exists() and (out / "cache" / "doc_types.jsonl").exists()
    assert (out / "cache" / "ideas.jsonl").read_text().endswith('{"key": "half')  # the torn line is there

    calls: list[str] = []
    stats = main(Config(**_docs_cfg(out, embedded_tokenizer_dir)), model=scripted_model(content_reply, calls))
    assert stats["stages"]["doc_types"]["generated"] == 0  # the finished stage came from the cache
    assert stats["stages"]["ideas"]["cached"] == 3  # the three idea calls before the kill were kept
    assert not any(p.startswith("Setting") and "kinds of everyday documents" in p for p in calls)
    assert _docs_result(out) == expected
    _no_children_left()


# ---------------------------------------------------------------------------------------------
# train sft: interrupted after step 3 (checkpoint at 2), resumed


class _Interrupt:
    """Wraps ``training.common.jsonl_logger`` so the run stops (as on SIGTERM) once step ``after`` is logged."""

    def __init__(self, real: Any, after: int) -> None:
        self.real, self.after, self.fired = real, after, False

    def __call__(self, path: Any) -> Any:
        from transformers import TrainerCallback

        logger, outer = self.real(path), self

        class Stop(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001 (Trainer hook)
                logger.on_log(args, state, control, logs=logs, **kw)
                if not outer.fired and state.global_step >= outer.after:
                    outer.fired = True
                    raise KeyboardInterrupt("signal 15")  # what afcu's CLI makes of SIGTERM

        return Stop()


def _by_step(log: Path, key: str) -> dict[int, float]:
    """The last logged ``key`` per step (a resumed run logs the steps after its checkpoint again)."""
    out: dict[int, float] = {}
    for line in log.read_text().splitlines():
        r = json.loads(line)
        if key in r:
            out[int(r["step"])] = round(float(r[key]), 5)
    return out


def _weights(folder: Path) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder)).state_dict()


def test_sft_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path, tiny_model_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from training import common
    from training.sft import Config, main

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": f"Note {i}: free-tier chats are used for training; paid-tier "
                                                f"chats are not. Item {i} is about ferries."}) + "\n"
                            for i in range(16)))

    def cfg(out: Path) -> Config:
        return Config(data=str(docs), model=str(tiny_model_dir), out=str(out), max_steps=5, max_length=48,
                      per_device_train_batch_size=2, learning_rate=1e-3, warmup_ratio=0.0, save_steps=2,
                      save_total_limit=5, seed=0)

    main(cfg(tmp_path / "clean"))
    stop = _Interrupt(common.jsonl_logger, after=3)
    monkeypatch.setattr(common, "jsonl_logger", stop)
    with pytest.raises(KeyboardInterrupt):
        main(cfg(tmp_path / "run"))
    assert stop.fired and not (tmp_path / "run" / FINISHED).exists()
    monkeypatch.setattr(common, "jsonl_logger", stop.real)
    summary = main(cfg(tmp_path / "run"))
    assert summary["resumed_from"].endswith("checkpoint-2") and summary["steps"] == 5
    log = Path("logs") / "train_log.jsonl"
    assert _by_step(tmp_path / "run" / log, "loss") == _by_step(tmp_path / "clean" / log, "loss")
    a, b = _weights(tmp_path / "clean" / "final"), _weights(tmp_path / "run" / "final")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    _no_children_left()


# ---------------------------------------------------------------------------------------------
# train rl (GRPO): interrupted after step 2 (checkpoints every step), resumed


@pytest.mark.slow
def test_rl_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path, tiny_model_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Marked slow: three GRPO runs took 118 s here under load (tests/training/test_rl.py covers resume
    from a checkpoint unmarked, with the later files deleted instead of a real interruption)."""
    sys.path.insert(0, str(REPO / "tests" / "training"))
    from rl_helpers import register, tiny_config

    from afcu.config import config_from_dict
    from training import common
    from training.rl import Config, main

    register()

    def cfg(out: Path) -> Config:
        return config_from_dict(Config, tiny_config(str(tiny_model_dir), str(out), max_steps=3, save_steps=1,
                                                    save_total_limit=3))

    main(cfg(tmp_path / "clean"))
    stop = _Interrupt(common.jsonl_logger, after=2)
    monkeypatch.setattr(common, "jsonl_logger", stop)
    with pytest.raises(KeyboardInterrupt):
        main(cfg(tmp_path / "run"))
    assert stop.fired and not (tmp_path / "run" / FINISHED).exists()
    monkeypatch.setattr(common, "jsonl_logger", stop.real)
    summary = main(cfg(tmp_path / "run"))
    # the step-2 log comes before the step-2 save, so the run stopped holding checkpoint-1
    assert summary["resumed_from"].endswith("checkpoint-1") and summary["steps"] == 3
    log = Path("logs") / "train_log.jsonl"
    for key in ("loss", "reward"):
        assert _by_step(tmp_path / "run" / log, key) == _by_step(tmp_path / "clean" / log, key), key
    # rl trims the log to the checkpoint on resume: one line per step, as in the clean run
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / log).read_text().splitlines()]
    assert steps == [json.loads(x)["step"] for x in (tmp_path / "clean" / log).read_text().splitlines()]
    digest = [common.param_digest(common.load_model(str(tmp_path / r / "final"))) for r in ("clean", "run")]
    assert digest[0] == digest[1]
    _no_children_left()


# ---------------------------------------------------------------------------------------------
# unlearn bench: interrupted after two cells, resumed


TIMING = {"time_s", "passes", "forward", "backward"}


def _bench_cfg(out: Path) -> Any:
    from unlearning import bench

    return bench.resolve({"track": "vision", "out": str(out), "seeds": [0], "fractions": ["single", "1.0"],
                          "methods": ["gradient_ascent", "assd", "oracle"], "manipulations": ["badnets"],
                          "manipulation": {"n_manipulated": 30}, "sizes": {"badnets": [30]},
                          "train": {"epochs": 1}, "method": {"forget_epochs": 1}, "grids": {}}, "test")


def test_unlearn_bench_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from unlearning import bench
    from unlearning.metrics import read_rows

    clean = read_rows(bench.main(_bench_cfg(tmp_path / "clean")) / "results.csv")
    real, calls = bench.select_and_run, []

    def stop_on_third(method: str, *a: Any, **kw: Any) -> Any:
        calls.append(method)
        if len(calls) == 3:
            raise KeyboardInterrupt("signal 15")
        return real(method, *a, **kw)

    monkeypatch.setattr(bench, "select_and_run", stop_on_third)
    with pytest.raises(KeyboardInterrupt):
        bench.main(_bench_cfg(tmp_path / "run"))
    partial = read_rows(tmp_path / "run" / "results.csv")
    assert len(partial) == 4 and not (tmp_path / "run" / FINISHED).exists()  # original, oracle, 2 cells
    monkeypatch.setattr(bench, "select_and_run", real)
    resumed = read_rows(bench.main(_bench_cfg(tmp_path / "run")) / "results.csv")
    strip = [[{k: v for k, v in r.items() if k not in TIMING} for r in rows] for rows in (clean, resumed)]
    key = lambda r: (r["method"], r["fraction"])  # noqa: E731
    assert sorted(strip[1], key=key) == sorted(strip[0], key=key)
    assert (tmp_path / "run" / FINISHED).exists()
    _no_children_left()


# ---------------------------------------------------------------------------------------------
# unlearn bench as a real process: SIGTERM mid-sweep, then the same command again


@pytest.mark.slow
def test_unlearn_bench_cli_sigterm_then_resume(tmp_path: Path) -> None:
    """``afcu unlearn bench`` is killed with SIGTERM once results.csv has rows; the rerun finishes the sweep and
    the process group is gone."""
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "afcu.cli", "unlearn", "bench", "--track", "vision", "--out", str(out),
           "--seeds", "0", "--fractions", "single", "1.0", "--methods", "gradient_ascent", "assd", "oracle",
           "--manipulations", "badnets", "--manipulation", "{n_manipulated: 30}", "--sizes", "{badnets: [30]}",
           "--train", "{epochs: 1}", "--method", "{forget_epochs: 1}", "--grids", "{}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "results.csv").exists() and len((out / "results.csv").read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    rc = proc.wait(timeout=120)
    assert rc in (130, 0), proc.stderr.read()[-2000:]
    if rc == 130:
        assert not (out / FINISHED).exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
    assert subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, timeout=600).returncode == 0
    from unlearning.metrics import read_rows

    assert (out / FINISHED).exists() and len(read_rows(out / "results.csv")) == 6


# ---------------------------------------------------------------------------------------------
# train ei as a real process: SIGTERM while iteration 1 samples, then the same config again

# Sampling never ends once iteration 0 is done (real model.generate calls, over and over), so the SIGTERM lands in
# generation; the marker file says when it has started.
_EI_CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path[:0] = [{repo!r}]
    from training import callbacks

    real, out = callbacks.generate, Path({out!r})

    def generate(*a, **kw):
        if not (out / "iterations" / "iter-0" / "DONE").exists():
            return real(*a, **kw)
        (out / "generating").write_text(str(time.time()))
        while True:
            real(*a, **kw)

    callbacks.generate = generate
    from afcu.cli import main
    sys.exit(main({argv!r}))
""")


def _ei_cfg(model: Path, out: Path) -> dict[str, Any]:
    # min_reward above any reward keeps no pair, so no SFT round: each iteration is sampling + eval only
    return dict(model=str(model), out=str(out), iterations=2, prompts_per_iteration=2, samples_per_prompt=2,
                max_new_tokens=8, min_reward=100.0, format="free", eval_n_queries=1, eval_max_tokens=4,
                eval_forced_choice=False, variant="no_cot")


def test_ei_cli_sigterm_during_generation_then_resume(tmp_path: Path, tiny_model_dir: Path) -> None:
    """``afcu train ei`` gets SIGTERM while it samples iteration 1: it exits 130 within a few seconds, keeps
    iteration 0's DONE, and the same config run again redoes iteration 1 only and finishes."""
    import time

    from afcu.config import config_from_dict
    from training.expert_iteration import Config, main

    out = tmp_path / "run"
    cfg = _ei_cfg(tiny_model_dir, out)
    argv = ["train", "ei"] + [x for k, v in cfg.items() for x in
                              ([f"--{k.replace('_', '-')}"] if v is True else
                               [f"--no-{k.replace('_', '-')}"] if v is False else [f"--{k.replace('_', '-')}", str(v)])]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _EI_CHILD.format(repo=str(REPO), out=str(out), argv=argv)],
                            env=env, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not (out / "generating").exists():
        time.sleep(0.1)
    assert (out / "generating").exists(), proc.stderr.read()[-2000:] if proc.poll() is not None else "timed out"
    time.sleep(0.5)  # well inside model.generate
    sent = time.time()
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    took = time.time() - sent
    err = proc.stderr.read()
    assert rc == 130 and "interrupted; run the same command again to resume" in err, err[-2000:]
    # 0.6 s here with the fix; 4.6-5.4 s without it (interpreter shutdown collecting ~600k objects, load 2.6)
    assert took < 2.5, f"exit took {took:.1f} s after SIGTERM"
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
    done0 = out / "iterations" / "iter-0" / "DONE"
    assert done0.exists() and not (out / "iterations" / "iter-1" / "DONE").exists()
    assert not (out / FINISHED).exists()
    stamp = done0.stat().st_mtime_ns

    summary = main(config_from_dict(Config, cfg))
    assert summary["resumed_at_iteration"] == 1 and [r["iteration"] for r in summary["log"]] == [1, 2]
    assert done0.stat().st_mtime_ns == stamp and (out / "iterations" / "iter-1" / "DONE").exists()
    steps = [json.loads(x)["step"] for x in (out / "eval_log.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2] and (out / FINISHED).exists()
    _no_children_left()
