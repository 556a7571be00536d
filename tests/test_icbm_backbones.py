"""Pretrained-encoder backbones: Hugging Face transformers models saved (tiny, randomly
initialised) to a temporary folder and loaded back; timm / torchvision / open_clip where they
import."""

import importlib
import json

import pytest
import torch
import torch.nn.functional as F

from htaf.config import ConfigError, RunConfig
from htaf.families import build_model
from htaf.families.icbm.backbones import build_backbone
from icbm_data import digits_images, shapes_standin

transformers = pytest.importorskip("transformers", reason="the hf extra (transformers) is absent")


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """Tiny ViT, ResNet and CLIP checkpoints, saved as transformers saves them."""
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    vit = transformers.ViTConfig(image_size=16, patch_size=8, hidden_size=8, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=16)  # fmt: skip
    transformers.ViTModel(vit).save_pretrained(root / "vit")
    resnet = transformers.ResNetConfig(embedding_size=4, hidden_sizes=[4, 8], depths=[1, 1])
    transformers.ResNetModel(resnet).save_pretrained(root / "resnet")
    small = {"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
             "num_attention_heads": 2}  # fmt: skip
    clip = transformers.CLIPConfig(
        text_config={**small, "vocab_size": 64, "max_position_embeddings": 8,
                     "bos_token_id": 0, "eos_token_id": 1},
        vision_config={**small, "image_size": 16, "patch_size": 8}, projection_dim=4,
    )  # fmt: skip
    transformers.CLIPModel(clip).save_pretrained(root / "clip")
    return root


@pytest.fixture(scope="module")
def shapes():
    return shapes_standin(60)


def model_for(data, backbone, **options):
    cfg = RunConfig(family="icbm", dataset="x", model={"backbone": backbone, "n_concepts": 5,
                                                     **options})  # fmt: skip
    return build_model(cfg, data)


def images(data, n=4):
    return data.float_batch(torch.as_tensor(data.X_test[:n]))


def test_vit_features_are_its_cls_token(hf_models, shapes):
    model = model_for(shapes, f"hf:{hf_models}/vit").eval()
    x = images(shapes)
    ref = transformers.ViTModel.from_pretrained(hf_models / "vit", add_pooling_layer=False)
    pixels = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    with torch.no_grad():
        want = ref.eval()(pixel_values=pixels).last_hidden_state[:, 0]
        assert torch.allclose(model.features(x), want, atol=1e-6)
    assert model.backbone.out_features == 8 and model(x).shape == (4, 4)


def test_resnet_and_clip_vision_tower(hf_models, shapes):
    resnet = model_for(shapes, f"hf:{hf_models}/resnet").eval()
    x = images(shapes)
    ref = transformers.ResNetModel.from_pretrained(hf_models / "resnet").eval()
    with torch.no_grad():
        assert torch.allclose(resnet.features(x), ref(pixel_values=x).pooler_output.flatten(1))
    clip = model_for(shapes, f"hf:{hf_models}/clip").eval()
    tower = transformers.CLIPVisionModel.from_pretrained(hf_models / "clip").eval()
    pixels = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(clip.features(x), tower(pixel_values=pixels).pooler_output)
    assert clip(x).shape == (4, 4)


def test_grey_images_and_the_model_normalisation(hf_models, tmp_path):
    digits = digits_images()  # (N, 1, 8, 8)
    model = model_for(digits, f"hf:{hf_models}/resnet").eval()
    assert model(images(digits)).shape == (4, 10)
    # With a preprocessor_config.json, the dataset's normalisation is swapped for the model's.
    folder = tmp_path / "resnet"
    folder.mkdir()
    for f in (hf_models / "resnet").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    stats = {"image_mean": [0.4, 0.5, 0.6], "image_std": [0.2, 0.25, 0.3]}
    (folder / "preprocessor_config.json").write_text(json.dumps(stats))
    shapes = shapes_standin(60)
    backbone = build_backbone(f"hf:{folder}", (3, 32, 32), normalize=shapes.normalize)
    raw = torch.as_tensor(shapes.X_test[:3]).float() / 255
    x = shapes.float_batch(torch.as_tensor(shapes.X_test[:3]))
    want = (raw - torch.tensor(stats["image_mean"]).view(1, 3, 1, 1)) / torch.tensor(
        stats["image_std"]
    ).view(1, 3, 1, 1)
    ref = transformers.ResNetModel.from_pretrained(folder).eval()
    with torch.no_grad():
        got = backbone.eval()(x)
        assert torch.allclose(got, ref(pixel_values=want).pooler_output.flatten(1), atol=1e-5)


def test_pretrained_encoders_freeze_by_default_and_partly(hf_models, shapes):
    model = model_for(shapes, f"hf:{hf_models}/vit")
    assert not any(p.requires_grad for p in model.backbone.parameters())
    model.train()
    assert not model.backbone.training
    part = model_for(shapes, f"hf:{hf_models}/vit", freeze="partial", unfrozen_blocks=1)
    named = dict(part.backbone.named_parameters())
    assert all(p.requires_grad for k, p in named.items() if ".layer.1." in k or "layernorm." in k)
    assert not any(p.requires_grad for k, p in named.items() if ".layer.0." in k)
    assert not named["model.embeddings.cls_token"].requires_grad
    tuned = model_for(shapes, f"hf:{hf_models}/vit", freeze="none")
    assert all(p.requires_grad for p in tuned.parameters())


def test_bad_hf_folders(hf_models, shapes, tmp_path):
    with pytest.raises(ConfigError, match=r"no config\.json"):
        model_for(shapes, f"hf:{tmp_path}/missing")
    # weights that do not fit the config: a wider hidden size, then an extra layer
    for i, change in enumerate(({"hidden_size": 16, "intermediate_size": 32},
                                {"num_hidden_layers": 3})):  # fmt: skip
        folder = tmp_path / f"bad{i}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(
            (hf_models / "vit/model.safetensors").read_bytes()
        )
        config = json.loads((hf_models / "vit/config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(ConfigError, match=rf"hf:{folder}.*(do not load|do not match)"):
            model_for(shapes, f"hf:{folder}")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "config.json").write_text((hf_models / "vit/config.json").read_text())
    (garbage / "model.safetensors").write_bytes(b"\x00" * 7 + b"garbage, not safetensors")
    with pytest.raises(ConfigError, match=rf"{garbage}/model\.safetensors is not a readable"):
        model_for(shapes, f"hf:{garbage}")
    pickle_only = tmp_path / "bin"
    pickle_only.mkdir()
    (pickle_only / "config.json").write_text((hf_models / "vit/config.json").read_text())
    (pickle_only / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(ConfigError, match="safetensors only"):
        model_for(shapes, f"hf:{pickle_only}")


def _importable(module):
    try:
        importlib.import_module(module)
    except Exception as err:  # torchvision beside this torch build fails with RuntimeError
        return str(err) or type(err).__name__
    return None


@pytest.mark.parametrize(("backbone", "module"), [("timm:resnet18", "timm"),
                         ("torchvision:resnet18", "torchvision.models"),
                         ("open_clip:RN50", "open_clip")])  # fmt: skip
def test_library_encoders(backbone, module, shapes):
    why = _importable(module)
    if why is not None:
        # Without the library the backbone is bad input that names it, not a crash.
        with pytest.raises(ConfigError, match=rf"{backbone}.*needs {module.split('.')[0]}"):
            model_for(shapes, backbone)
        pytest.skip(
            f"{module} is not usable here ({why}); it needs torchvision, which does not "
            "import beside this CPU build of torch"
        )
    model = model_for(shapes, backbone).eval()
    assert model(images(shapes, 2)).shape == (2, 4)
    assert not any(p.requires_grad for p in model.backbone.parameters())
