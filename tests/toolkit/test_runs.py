"""toolkit/runs.py checkpoints: meta stored as plain data, read back with weights_only, older files still load."""
import numpy as np
import torch

from toolkit.runs import load_checkpoint, save_checkpoint


def test_meta_is_stored_as_plain_data(tmp_path):
    model = torch.nn.Linear(3, 2)
    meta = {"model": "moe", "classes": ["a", "b"], "feat_dims": {"f-UTT": np.int64(3)}, "feat_levels": {"f-UTT": "utt"},
            "hparams": {"dropout": np.float32(0.25), "fused_head": np.bool_(True), "sizes": (np.int64(4), 5)}}
    save_checkpoint(str(tmp_path / "best.pth"), model, meta)
    raw = torch.load(tmp_path / "best.pth", weights_only=True)  # no numpy globals needed
    assert type(raw["feat_dims"]["f-UTT"]) is int and type(raw["hparams"]["dropout"]) is float
    assert raw["hparams"]["fused_head"] is True and raw["hparams"]["sizes"] == (4, 5)
    ckpt = load_checkpoint(str(tmp_path / "best.pth"))
    torch.testing.assert_close(ckpt["state_dict"]["weight"], model.weight.detach())


def test_older_checkpoints_with_numpy_scalars_load(tmp_path):
    state = {"state_dict": {"w": torch.ones(2)}, "hparams": {"dropout": np.float64(0.3), "layers": np.int64(2)}}
    torch.save(state, tmp_path / "new.pth")
    assert load_checkpoint(str(tmp_path / "new.pth"))["hparams"] == {"dropout": 0.3, "layers": 2}
    # as numpy 1.x wrote them: the scalar helper under numpy.core.multiarray (legacy format: one plain pickle stream)
    buffer = __import__("io").BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    assert b"cnumpy._core.multiarray\nscalar\n" in data
    (tmp_path / "old.pth").write_bytes(data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    ckpt = load_checkpoint(str(tmp_path / "old.pth"))
    assert ckpt["hparams"] == {"dropout": 0.3, "layers": 2} and ckpt["state_dict"]["w"].tolist() == [1.0, 1.0]
