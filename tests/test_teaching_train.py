"""The shared training loop of the teaching models (llm_widgets.teaching.train) on a tiny linear model."""
import pytest
import torch

from llm_widgets.teaching.train import cached_training, fit_epochs, fit_steps, frozen, one_thread


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Flatten(), torch.nn.Linear(4, 1))


def test_fit_epochs_shuffles_logs_reports_and_ends_in_eval_mode():
    model, x, y = _model(), torch.arange(10)[:, None], torch.linspace(-1, 1, 10)[:, None]
    seen, lines, progress = [], [], []

    def loss(idx):
        seen.append(idx.tolist())
        assert model.training
        return ((model(x[idx]) - y[idx]) ** 2).mean()

    emb = model[0].weight
    before = emb.detach().clone()
    with frozen(emb):
        fit_epochs(model, loss, 10, epochs=2, batch=4, lr=0.1, seed=3, log=lines.append, progress=progress.append)
    assert emb.requires_grad and torch.equal(emb, before)  # frozen: untouched, then trainable again
    g = torch.Generator().manual_seed(3)
    orders = [torch.randperm(10, generator=g).tolist() for _ in range(2)]
    assert seen == [o[i:i + 4] for o in orders for i in (0, 4, 8)]
    assert [line.split(":")[0] for line in lines] == ["epoch 0", "epoch 1"]
    assert progress == pytest.approx([k / 6 for k in range(1, 7)]) and not model.training


def test_fit_steps_and_eval_mode_after_an_error():
    model = _model()
    lines = []
    fit_steps(model, lambda step: model(torch.tensor([[step % 10]])).pow(2).mean(), 3, lr=0.1, log=lines.append,
              log_every=2, what="toy loss")
    assert [line.split(":")[0] for line in lines] == ["step 0", "step 2"] and "toy loss" in lines[0]

    def boom(idx):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        fit_epochs(model, boom, 4, epochs=1, batch=2, lr=0.1, seed=0)
    assert not model.training


def test_cached_training_saves_then_loads(tmp_path):
    path = tmp_path / "m.pt"
    threads = torch.get_num_threads()

    def train(model):
        with one_thread():
            assert torch.get_num_threads() == 1
            with torch.no_grad():
                model[2].bias.fill_(7.0)
        return model

    trained, seconds = cached_training(_model(), path, train)
    assert seconds is not None and path.exists() and torch.get_num_threads() == threads
    loaded, again = cached_training(_model(), path, lambda m: pytest.fail("trained again"))
    assert again is None and torch.equal(loaded[2].bias, trained[2].bias)
    _, fresh = cached_training(_model(), path, train, load=False, save=False)
    assert fresh is not None
