"""SleeperMark at toy scale: the codec reads messages (and only messages); fine-tuning changes the model."""

from __future__ import annotations

import torch

from protection import ddpm
from protection import sleepermark as sm


def test_decoder_recovers_message_and_gives_chance_on_clean_images():
    d = ddpm.load_digits_split(0)
    enc, dec = sm.train_codec(d["x"], sm.CodecConfig(steps=300, batch_size=64), seed=0)
    gen = torch.Generator().manual_seed(1)
    enc_acc, clean_acc = [], []
    for _ in range(30):
        msg = torch.randint(0, 2, (16,), generator=gen).float()
        with torch.no_grad():
            r = enc(msg[None])[0]
        enc_acc.append(float(sm.decode_accuracy(dec, d["x_holdout"] + r, msg).mean()))
        clean_acc.append(float(sm.decode_accuracy(dec, d["x_holdout"], msg).mean()))
    assert min(enc_acc) > 0.95  # every message read back from held-out images that carry it
    assert 0.4 < sum(clean_acc) / len(clean_acc) < 0.6  # unmarked images: chance against a random message


def test_a_fine_tuning_step_changes_the_diffusion_model():
    d = ddpm.load_digits_split(0)
    model = ddpm.new_model(0, T=20)
    before = {k: v.clone() for k, v in model.denoiser.state_dict().items()}
    enc_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    ddpm.train(model, d["x"], d["y"], steps=1, seed=0, batch_size=16, train_encoder=False)
    assert any(not torch.equal(before[k], v) for k, v in model.denoiser.state_dict().items())
    assert all(torch.equal(enc_before[k], v) for k, v in model.encoder.state_dict().items())
    # stage 2 works on a copy: the original stays as it was, the copy's denoiser moves, its text encoder does not
    after_train = {k: v.clone() for k, v in model.denoiser.state_dict().items()}
    marked = sm.embed(model, torch.full((64,), 0.3), d["x"], d["y"], sm.EmbedConfig(steps=1, batch_size=16), seed=0)
    assert all(torch.equal(after_train[k], v) for k, v in model.denoiser.state_dict().items())
    assert any(not torch.equal(after_train[k], v) for k, v in marked.denoiser.state_dict().items())
    assert all(torch.equal(enc_before[k], v) for k, v in marked.encoder.state_dict().items())


def test_trigger_prompts_never_occur_in_ordinary_prompts():
    gen = torch.Generator().manual_seed(0)
    p = ddpm.prompts(torch.arange(20000) % 10, gen, p_filler=1.0)
    assert not (p[:, 1:] == torch.tensor(ddpm.TRIGGER)).all(1).any()
    t = ddpm.prompts(torch.arange(5), gen, trigger=True)
    assert (t[:, 1:] == torch.tensor(ddpm.TRIGGER)).all()
