"""fit()'s saved state between epochs: a stopped run resumed on the same machine ends exactly as an
uninterrupted one (both made here, in this process), and a state of another run is never resumed."""
import pytest
import torch

from emm_lib import train as train_mod
from emm_lib.models import build_model
from emm_lib.train import fit

KW = dict(epochs=4, batch_size=64, lr=5e-3, seed=3, patience=None, device="cpu", resume_every_s=0)


def _model(ds):
    torch.manual_seed(0)
    return build_model("adatt", ds.spec, ds.tasks, dropout=0.3)  # dropout: torch's global generator matters


class _Stop(Exception):
    pass


def _stopped_after(monkeypatch, n_epochs: int):
    """Make the (n_epochs + 1)-th epoch raise, as if the process were stopped there."""
    real, calls = train_mod._train_epoch, {"n": 0}

    def epoch(*a, **k):
        calls["n"] += 1
        if calls["n"] > n_epochs:
            raise _Stop
        return real(*a, **k)

    monkeypatch.setattr(train_mod, "_train_epoch", epoch)


def test_a_stopped_run_resumes_to_the_same_weights_and_history(tiny_dataset, tmp_path, monkeypatch):
    whole = _model(tiny_dataset)
    ref = fit(whole, tiny_dataset, **KW)

    path = tmp_path / "run.resume.pt"
    with monkeypatch.context() as m:
        _stopped_after(m, 2)
        with pytest.raises(_Stop):
            fit(_model(tiny_dataset), tiny_dataset, resume_path=path, **KW)
    assert path.exists()
    assert torch.load(path, weights_only=True)["epoch"] == 2

    resumed_model = _model(tiny_dataset)
    calls = {"n": 0}
    real = train_mod._train_epoch

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(train_mod, "_train_epoch", counting)
    res = fit(resumed_model, tiny_dataset, resume_path=path, **KW)
    assert calls["n"] == 2, "the resumed run trains only the epochs that were left"
    assert not path.exists(), "the state is removed when the run ends"
    cols = [c for c in ref.history.columns if c != "seconds"]
    assert res.history[cols].equals(ref.history[cols])
    assert res.best_epoch == ref.best_epoch
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed_model.state_dict()[k]), k


def test_a_state_of_other_settings_is_set_aside(tiny_dataset, tmp_path, monkeypatch):
    path = tmp_path / "run.resume.pt"
    with monkeypatch.context() as m:
        _stopped_after(m, 1)
        with pytest.raises(_Stop):
            fit(_model(tiny_dataset), tiny_dataset, resume_path=path, **KW)
    other = {**KW, "lr": 1e-3}
    with pytest.warns(UserWarning, match="other settings"):
        res = fit(_model(tiny_dataset), tiny_dataset, resume_path=path, **other)
    assert len(res.history) == KW["epochs"]  # trained from epoch 1
    assert (tmp_path / "run.resume.pt.stale").exists()


def test_a_damaged_state_starts_over_with_a_warning(tiny_dataset, tmp_path):
    path = tmp_path / "run.resume.pt"
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="could not be read"):
        res = fit(_model(tiny_dataset), tiny_dataset, resume_path=path, **{**KW, "epochs": 2})
    assert list(res.history.epoch) == [1, 2]
    assert not path.exists()


def test_no_state_is_written_between_saves(tiny_dataset, tmp_path, monkeypatch):
    """With the default interval a short run writes nothing."""
    path = tmp_path / "run.resume.pt"
    with monkeypatch.context() as m:
        _stopped_after(m, 2)
        with pytest.raises(_Stop):
            fit(_model(tiny_dataset), tiny_dataset, resume_path=path, **{**KW, "resume_every_s": 3600})
    assert not path.exists()


def test_a_negative_save_interval_is_refused_by_name(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="resume_every_s"):
        fit(_model(tiny_dataset), tiny_dataset, resume_path=tmp_path / "s.pt", **{**KW, "resume_every_s": -1})
