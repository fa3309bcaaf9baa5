"""Images as a built-in family, in-process: the sources (digits, a folder of PNG/JPEG files), augmentation, the
image models sized from the data, a whole run into a real sqlite store, and the packaged model fed encoded
images, base64 text and pixel arrays."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from PIL import Image

from mlproj.data.images import DigitsImages, ImageFolder, ImageSource
from mlproj.errors import ConfigError
from mlproj.train import run
from tests.conftest import QUICK

DIGITS = ["data=digits_images", "model=cnn", "model.channels=[8,16]"]


def write_folder(root: Path, per_class: int = 12, size: int = 20) -> Path:
    """Three classes a network can tell apart (a bright square's corner), PNG and JPEG, several sizes and modes."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(["cat", "dog", "owl"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            side = size + (i % 3) * 4  # resized to data.image_size
            pixels = rng.integers(0, 60, (side, side, 3), dtype=np.uint8)
            half = side // 2
            rows, cols = [(slice(0, half), slice(0, half)), (slice(half, None), slice(half, None))][k % 2]
            pixels[rows, cols] = 230 if k < 2 else 120
            image = Image.fromarray(pixels, "RGB")
            if i % 4 == 0:
                image.convert("L").save(root / name / f"{i}.png")
            elif i % 4 == 1:
                image.save(root / name / f"{i}.JPG", quality=95)
            else:
                image.save(root / name / f"{i}.png")
    (root / "notes").mkdir()  # a folder without images is not a class
    (root / "notes" / "readme.txt").write_text("not an image")
    return root


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def test_image_keys_in_conf_equal_the_source_defaults():
    from mlproj.config.schema import config_dir

    shared = OmegaConf.to_container(OmegaConf.load(Path(config_dir()) / "data" / "common" / "image.yaml"))
    defaults = ImageSource.__dataclass_fields__
    for key, value in shared.items():
        field = defaults[key]
        default = field.default_factory() if callable(field.default_factory) else field.default
        assert default == value, key


def test_digits_images_are_1x8x8_split_stratified_and_reproducibly():
    prepared = DigitsImages().prepare()
    train, val, test = (prepared.splits[s] for s in ("train", "val", "test"))
    assert train.x.shape[1:] == (1, 8, 8) and train.x.dtype == np.uint8
    assert len(train.x) + len(val.x) + len(test.x) == 1797
    assert prepared.pre.labels == list(range(10)) and prepared.pre.shape == [1, 8, 8]
    assert len(test.x) == pytest.approx(0.15 * 1797, abs=2)
    counts = pd.Series(test.y).value_counts()
    assert counts.min() >= 25 and counts.max() <= 29  # stratified: ~27 of each of 10 classes
    # the raw column is the images as PNG files, what the packaged model takes
    decoded = np.asarray(Image.open(io.BytesIO(test.raw["image"][0])))
    assert np.array_equal(decoded, test.x[0, 0])
    again = DigitsImages().prepare().splits["test"]
    assert np.array_equal(again.x, test.x)
    other = DigitsImages(split_seed=7).prepare().splits["test"]
    assert not np.array_equal(other.x, test.x)
    assert DigitsImages(image_size=16).prepare().pre.shape == [1, 16, 16]


def test_image_folder_reads_classes_resizes_and_picks_the_mode(tmp_path):
    root = write_folder(tmp_path / "pets")
    prepared = ImageFolder(path=str(root), image_size=16, val_fraction=0.25, test_fraction=0.25).prepare()
    assert prepared.pre.labels == ["cat", "dog", "owl"]
    assert prepared.pre.shape == [3, 16, 16]  # some images are RGB: all become RGB
    assert prepared.table.name == "pets" and len(prepared.table.features) == 36
    assert sorted(prepared.table.features["file"])[0] == "cat/0.png"
    gray = ImageFolder(path=str(root), image_size=12, color="gray").prepare()
    assert gray.pre.shape == [1, 12, 12]
    # the fitted normalisation is per channel, on the training split
    assert len(prepared.pre.mean) == 3 and all(s > 0 for s in prepared.pre.std)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda root: ImageFolder(path=str(root / "absent")), "no such folder"),
        (lambda root: ImageFolder(path=str(root / "one")), "a sub-folder of images per class"),
        (lambda root: ImageFolder(path=str(root / "broken")), "not a readable image"),
        (lambda root: ImageFolder(path=str(root / "sizes"), image_size=None), "set data.image_size"),
        (lambda root: DigitsImages(image_size=2), "data.image_size=2"),
        (lambda root: DigitsImages(test_fraction=0.0), "data.test_fraction"),
    ],
)
def test_image_sources_refuse_bad_input_in_one_line(tmp_path, make, message):
    for name in ("one/a", "broken/a", "broken/b", "sizes/a", "sizes/b"):
        (tmp_path / name).mkdir(parents=True)
    Image.new("L", (8, 8)).save(tmp_path / "one/a/x.png")
    Image.new("L", (8, 8)).save(tmp_path / "broken/a/x.png")
    (tmp_path / "broken/b/y.png").write_bytes(b"not a png")
    Image.new("L", (8, 8)).save(tmp_path / "sizes/a/x.png")
    Image.new("L", (9, 9)).save(tmp_path / "sizes/b/x.png")
    with pytest.raises(ConfigError, match=message) as info:
        make(tmp_path).prepare()
    assert "\n" not in str(info.value)


def test_augmentation_draws_per_image_and_keeps_shape_and_range():
    from mlproj.data.augment import augment

    torch.manual_seed(0)
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, :, :2] = 1.0  # a bar on the left
    flipped = augment(x, ["hflip"])
    on_right = flipped[:, 0, :, -1].mean(dim=1) == 1
    assert 10 < int(on_right.sum()) < 54  # each image flipped or not: not one draw for the batch
    moved = augment(x, ["crop", "rotate", "color"])
    assert moved.shape == x.shape and float(moved.min()) >= 0 and float(moved.max()) <= 1
    assert not torch.equal(moved, x)


def test_cnn_and_resnet_are_sized_from_the_input():
    from mlproj.models import CNN, MLP, ResNet

    digits, photo = torch.zeros(4, 1, 8, 8), torch.zeros(2, 3, 64, 64)
    assert CNN(64, 10, in_shape=[1, 8, 8])(digits).shape == (4, 10)
    assert CNN(3 * 64 * 64, 5, in_shape=[3, 64, 64])(photo).shape == (2, 5)
    small = ResNet(64, 10, in_shape=[1, 8, 8], width=8)
    assert small(digits).shape == (4, 10) and small.conv1.kernel_size == (3, 3)
    large = ResNet(3 * 64 * 64, 1, in_shape=[3, 64, 64], width=8)
    assert large(photo).shape == (2, 1) and large.conv1.kernel_size == (7, 7)
    full = ResNet(3 * 64 * 64, 1000, in_shape=[3, 64, 64])
    assert 11.6e6 < sum(p.numel() for p in full.parameters()) < 11.8e6  # ResNet-18's size
    assert MLP(64, 10)(digits).shape == (4, 10)  # an image read as its flat pixels
    with pytest.raises(ConfigError, match="model=cnn needs images"):
        CNN(10, 2, in_shape=[10])


def test_an_image_model_on_a_table_fails_at_startup_and_creates_nothing(make_cfg, tmp_path):
    store = f"sqlite:///{tmp_path / 'never.db'}"
    with pytest.raises(ConfigError, match=r"model=resnet needs images .* shape \[10\]"):
        run(make_cfg(*QUICK, f"tracking.uri='{store}'", "model=resnet"), [], tmp_path / "out")
    with pytest.raises(ConfigError, match=r"model\.weights=.absent\.safetensors.: no such file"):
        run(make_cfg(*QUICK, *DIGITS[:1], "model=resnet", "model.weights=absent.safetensors"), [], tmp_path / "o")
    with pytest.raises(ConfigError, match=r"data\.augment"):
        run(make_cfg(*QUICK, *DIGITS, "data.augment=[mirror]"), [], tmp_path / "o")
    assert not (tmp_path / "never.db").exists() and not (tmp_path / "mlflow.db").exists()


def test_resnet_starts_from_a_local_weights_file_which_the_packaged_model_does_not_need(make_cfg, store, tmp_path):
    from safetensors.torch import save_file

    from mlproj.models import ResNet

    torch.manual_seed(1)
    start = ResNet(
        64, 7, in_shape=[1, 8, 8], width=4, layers=[1, 1, 1, 1]
    )  # another head: `fc` does not match and stays fresh
    save_file({k: v.contiguous() for k, v in start.state_dict().items()}, str(tmp_path / "start.safetensors"))
    loaded = ResNet(
        64, 10, in_shape=[1, 8, 8], width=4, layers=[1, 1, 1, 1], weights=str(tmp_path / "start.safetensors")
    )
    assert torch.equal(loaded.layer3[0].conv1.weight, start.layer3[0].conv1.weight)
    assert loaded.fc.weight.shape == (10, 32)
    with pytest.raises(ConfigError, match="no tensor matches"):
        ResNet(64, 10, in_shape=[1, 8, 8], width=8, weights=str(tmp_path / "start.safetensors"))

    overrides = [
        *QUICK,
        f"tracking.uri='{store}'",
        "data=digits_images",
        "model=resnet",
        "model.width=4",
        "model.layers=[1,1,1,1]",
    ]
    result = run(make_cfg(*overrides, f"model.weights='{tmp_path / 'start.safetensors'}'"), [], tmp_path / "out")
    (tmp_path / "start.safetensors").unlink()  # the packaged model carries its trained weights, not the file
    model = mlflow.pyfunc.load_model(result.model_uri)
    test = DigitsImages().prepare().splits["test"]
    assert len(model.predict(test.raw.head(4))) == 4


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One small digits run with the CNN (a few full epochs), shared by the tests that read it."""
    from hydra import compose, initialize_config_dir

    from mlproj.config.schema import config_dir

    root = tmp_path_factory.mktemp("digits")
    store = f"sqlite:///{root / 'mlflow.db'}"
    overrides = [*DIGITS, "trainer.max_epochs=3", "trainer.progress_bar=none", "trainer.accelerator=cpu"]
    overrides += ["trainer.devices=1", f"tracking.uri='{store}'", "++registry.thresholds.test_accuracy=0.5"]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    result = run(cfg, [], root / "out")
    mlflow.set_tracking_uri(store)
    return {"store": store, "result": result, "root": root}


def test_digits_run_is_one_run_with_image_plots_and_the_gate(digits_run):
    store, result = digits_run["store"], digits_run["result"]
    client = MlflowClient(store)
    run_ = client.get_run(result.run_id)
    assert run_.info.status == "FINISHED"
    assert run_.data.metrics["test_accuracy"] > 0.6
    assert run_.data.tags["mlproj.data.name"] == "digits_images"
    assert run_.data.params["data._target_"] == "mlproj.data.images.DigitsImages"
    assert run_.data.tags["mlproj.registry.decision"] == "registered"
    assert client.get_model_version_by_alias("mlproj-digits_images", "champion").run_id == result.run_id
    plots = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert {"plots/confusion_matrix.png", "plots/test_images.png", "plots/learning_curves.png"} <= plots
    local = Path(client.download_artifacts(result.run_id, "plots/test_images.png", str(digits_run["root"])))
    assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (dataset,) = run_.inputs.dataset_inputs
    assert dataset.dataset.name == "digits_images"


def test_packaged_model_takes_files_base64_and_pixels_alike(digits_run):
    result = digits_run["result"]
    model = mlflow.pyfunc.load_model(result.model_uri)
    assert model.metadata.get_input_schema().input_types()[0].name == "binary"
    test = DigitsImages().prepare().splits["test"]
    plain = model.predict(test.raw)
    # the model reproduces the run's test accuracy from the encoded images: preprocessing travels inside
    accuracy = float((plain["prediction"].to_numpy() == test.raw_target.to_numpy()).mean())
    logged = MlflowClient(digits_run["store"]).get_run(result.run_id).data.metrics["test_accuracy"]
    assert accuracy == pytest.approx(logged, abs=1e-6)

    head = test.raw.head(5)
    as_text = pd.DataFrame({"image": [base64.b64encode(b).decode() for b in head["image"]]})
    as_arrays = pd.DataFrame({"image": list(test.x[:5])})
    scores = model.predict(as_text, params={"probabilities": True})
    assert list(scores.columns) == ["prediction", *[f"probability_{k}" for k in range(10)]]
    assert np.allclose(scores.iloc[:, 1:].sum(axis=1), 1.0, atol=1e-5)
    for frame in (as_text, as_arrays):
        assert model.predict(frame)["prediction"].tolist() == plain["prediction"].head(5).tolist()
    predictor = model._model_impl  # the predictor itself takes a (N, C, H, W) array or one (C, H, W) image
    assert predictor.predict(test.x[:5])["prediction"].tolist() == plain["prediction"].head(5).tolist()
    assert len(predictor.predict(test.x[0])) == 1
    # a larger image of another mode is converted and resized as the training images were
    big = np.kron(test.x[0, 0], np.ones((4, 4), dtype=np.uint8))
    rgb = np.stack([big] * 3, axis=-1)
    assert model.predict(pd.DataFrame({"image": [png(rgb)]}))["prediction"][0] == plain["prediction"][0]


def test_packaged_model_refuses_bad_images_in_one_line(digits_run):
    from mlproj.data.preprocess import InputError

    predictor = mlflow.pyfunc.load_model(digits_run["result"].model_uri)._model_impl
    for bad, message in (
        (pd.DataFrame({"image": [b"not a png"]}), "cannot decode an image"),
        (pd.DataFrame({"picture": [b""]}), "needs a column 'image'"),
        (np.zeros((2, 1, 9, 9)), r"image arrays must be \(N, 1, 8, 8\)"),
        (pd.DataFrame({"image": [np.full((1, 8, 8), 300.0)]}), r"in \[0, 255\]"),
    ):
        with pytest.raises(InputError, match=message):
            predictor.predict(bad)


def test_packaged_json_carries_image_inputs_and_unknown_kinds_are_refused(digits_run, tmp_path):
    from mlproj.packaging import pyfunc

    into = tmp_path / "model"
    local = Path(mlflow.artifacts.download_artifacts(digits_run["result"].model_uri, dst_path=str(into)))
    (meta_path,) = local.rglob(pyfunc.META_FILE)
    meta = json.loads(meta_path.read_text())
    assert meta["inputs"]["kind"] == "image" and meta["inputs"]["shape"] == [1, 8, 8]
    assert meta["labels"] == list(range(10)) and meta["preprocessing"] is None
    assert any(r.startswith("pillow==") for r in (local / "requirements.txt").read_text().split())
    meta["inputs"]["kind"] = "sound"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(pyfunc.ModelLoadError, match="unknown inputs kind 'sound'"):
        pyfunc.load(meta_path.parent)


def test_image_folder_run_with_augmentation_end_to_end(make_cfg, store, tmp_path):
    root = write_folder(tmp_path / "pets")
    overrides = [*QUICK, f"tracking.uri='{store}'", "data=image_folder", f"data.path='{root}'", "data.image_size=16"]
    overrides += ["data.augment=[hflip,crop]", "model=cnn", "model.channels=[8]", "data.batch_size=8"]
    result = run(make_cfg(*overrides), [], tmp_path / "out")
    client = MlflowClient(store)
    assert client.get_run(result.run_id).info.status == "FINISHED"
    assert client.get_run(result.run_id).data.tags["mlproj.data.name"] == "pets"
    model = mlflow.pyfunc.load_model(result.model_uri)
    jpeg = next((root / "dog").glob("*.JPG")).read_bytes()
    answer = model.predict(pd.DataFrame({"image": [jpeg]}), params={"probabilities": True})
    assert answer["prediction"][0] in {"cat", "dog", "owl"}
    assert set(answer.columns) == {"prediction", "probability_cat", "probability_dog", "probability_owl"}
