"""The learngene file: extraction, the safetensors format, and refusal of bad files."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from sws.errors import IncompatibleModelError, LearngeneFileError
from sws.extraction import extract
from sws.learngene import Learngene, SWSLearngene
from tests.conftest import perturbed_aux_net


def test_extract_keeps_one_block_per_stage_keyed_by_stage(tiny_arch) -> None:
    aux = perturbed_aux_net("3,3,4,3,3", tiny_arch)
    gene = SWSLearngene.from_aux_net(aux)
    stage_keys = {k.split(".")[1] for k in gene.tensors if k.startswith("stages.")}
    assert stage_keys == {"0", "1", "2", "3", "4"}
    for stage, block in enumerate(aux.stage_blocks):
        for name, tensor in block.state_dict().items():
            assert torch.equal(gene.tensors[f"stages.{stage}.{name}"], tensor)
    assert gene.num_params == sum(p.numel() for p in aux.parameters())


def test_save_and_load_round_trip_is_exact(tiny_arch, tmp_path) -> None:
    gene = SWSLearngene.from_aux_net(perturbed_aux_net("2,3", tiny_arch), training={"teacher_model": "t", "epochs": 3})
    path = gene.save(tmp_path / "g.safetensors")
    loaded = Learngene.load(path)
    assert isinstance(loaded, SWSLearngene)
    assert loaded.layout == gene.layout and loaded.architecture == gene.architecture
    assert loaded.training == {"teacher_model": "t", "epochs": 3}
    assert loaded.tensors.keys() == gene.tensors.keys()
    assert all(torch.equal(loaded.tensors[k], gene.tensors[k]) for k in gene.tensors)


def test_metadata_records_format_version_layout_and_shape(tiny_arch, tmp_path) -> None:
    from safetensors import safe_open

    path = SWSLearngene.from_aux_net(perturbed_aux_net("2,3", tiny_arch)).save(tmp_path / "g.safetensors")
    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata()
    assert meta["format"] == "sws.learngene" and meta["format_version"] == "1" and meta["kind"] == "sws"
    assert meta["layout"] == "2,3" and meta["aux_depth"] == "5"
    arch = json.loads(meta["architecture"])
    assert arch["embed_dim"] == 32 and arch["num_heads"] == 2 and arch["patch_size"] == 4 and arch["num_classes"] == 5


def test_extract_refuses_a_model_that_is_not_an_aux_net(tiny_arch) -> None:
    from sws.des_net import create_des_net

    with pytest.raises(IncompatibleModelError, match="not an Aux-Net"):
        extract(create_des_net(4, tiny_arch))


@pytest.fixture
def saved(tiny_arch, tmp_path):
    return SWSLearngene.from_aux_net(perturbed_aux_net("2,2", tiny_arch)).save(tmp_path / "g.safetensors")


def test_truncated_file_is_refused(saved) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) - 100])
    with pytest.raises(LearngeneFileError, match="truncated"):
        Learngene.load(saved)
    saved.write_bytes(data[:5])
    with pytest.raises(LearngeneFileError, match="truncated"):
        Learngene.load(saved)


def test_pickled_file_is_refused_without_unpickling(tmp_path) -> None:
    path = tmp_path / "model.pth"
    torch.save({"model": {"w": torch.ones(2)}}, path)
    with pytest.raises(LearngeneFileError, match=r"pickled PyTorch file.*never unpickles"):
        Learngene.load(path)


def test_foreign_safetensors_file_is_refused(tmp_path) -> None:
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.ones(2)}, str(path))
    with pytest.raises(LearngeneFileError, match="not a learngene"):
        Learngene.load(path)


def test_missing_file_is_refused(tmp_path) -> None:
    with pytest.raises(LearngeneFileError, match="no learngene file"):
        Learngene.load(tmp_path / "absent.safetensors")


def _rewrite(path, tensors=None, metadata_changes=None):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        meta = dict(handle.metadata())
        data = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    if tensors is not None:
        data = tensors(data)
    meta.update(metadata_changes or {})
    save_file(data, str(path), metadata=meta)


def test_tensors_that_disagree_with_metadata_are_refused(saved) -> None:
    _rewrite(saved, tensors=lambda d: {k: v for k, v in d.items() if not k.startswith("stages.1.mlp")})
    with pytest.raises(LearngeneFileError, match=r"missing stages\.1\.mlp"):
        Learngene.load(saved)


def test_a_layout_that_disagrees_with_the_tensors_is_refused(saved) -> None:
    _rewrite(saved, metadata_changes={"layout": "1,1,1", "aux_depth": "3"})
    with pytest.raises(LearngeneFileError, match=r"missing stages\.2"):
        Learngene.load(saved)


def test_a_layout_that_disagrees_with_the_aux_depth_is_refused(saved) -> None:
    _rewrite(saved, metadata_changes={"layout": "1,1,1"})
    with pytest.raises(LearngeneFileError, match="says a 4-layer Aux-Net but layout 1,1,1 has 3"):
        Learngene.load(saved)


def test_wrong_shape_is_refused(saved) -> None:
    _rewrite(saved, tensors=lambda d: {**d, "pos_embed": torch.zeros(1, 9, 32)})
    with pytest.raises(LearngeneFileError, match="pos_embed has shape"):
        Learngene.load(saved)


def test_newer_format_version_is_refused(saved) -> None:
    _rewrite(saved, metadata_changes={"format_version": "99"})
    with pytest.raises(LearngeneFileError, match="upgrade sws"):
        Learngene.load(saved)


def test_header_length_past_the_end_is_refused(tmp_path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 10_000) + b"{}")
    with pytest.raises(LearngeneFileError, match="truncated or corrupt"):
        Learngene.load(path)


def test_saved_files_get_the_usual_permissions(tiny_arch, tmp_path) -> None:
    import os
    import stat

    umask = os.umask(0o022)
    try:
        path = SWSLearngene.from_aux_net(perturbed_aux_net("1,1", tiny_arch)).save(tmp_path / "g.safetensors")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
