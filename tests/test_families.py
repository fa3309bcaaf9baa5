"""Typed instantiation: each `_target_` family takes its own classes only; nested nodes only where typed."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from mlproj.config import families
from mlproj.errors import ConfigError

FUNCTION = "logging.basicConfig"


@pytest.mark.parametrize(
    "family,good,wrong",
    [
        ("model", "torch.nn.Linear", "collections.OrderedDict"),
        ("optimizer", "torch.optim.SGD", "torch.nn.Linear"),
        ("scheduler", "torch.optim.lr_scheduler.StepLR", "torch.optim.SGD"),
        ("scheduler", "torch.optim.lr_scheduler.ReduceLROnPlateau", "torch.nn.Linear"),
        ("task", "pytorch_lightning.LightningModule", "torch.nn.Linear"),
        ("data", "pytorch_lightning.LightningDataModule", "torch.nn.Linear"),
        ("loss", "torch.nn.MSELoss", "torch.optim.SGD"),
        ("metric", "torchmetrics.MeanSquaredError", "torch.nn.MSELoss"),
        ("callback", "pytorch_lightning.callbacks.EarlyStopping", "torch.nn.Linear"),
        ("hydra_callback", "mlproj.sweeps.callback.SweepCallback", "pytorch_lightning.callbacks.EarlyStopping"),
        (
            "launcher",
            "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
            "mlproj.sweeps.callback.SweepCallback",
        ),
        ("sweeper", "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "hydra.plugins.launcher.Launcher"),
    ],
)
def test_each_family_takes_its_classes_and_refuses_functions_and_other_classes(family, good, wrong):
    assert families.resolve({"_target_": good}, family, "k").__name__ == good.rsplit(".", 1)[1]
    display = families.FAMILIES[family].display
    with pytest.raises(ConfigError) as info:
        families.resolve({"_target_": FUNCTION}, family, "k")
    assert str(info.value) == f"k._target_='{FUNCTION}' is a function, not a class of {display}"
    with pytest.raises(ConfigError) as info:
        families.resolve({"_target_": wrong}, family, "k")
    assert str(info.value) == f"k._target_='{wrong}' is not a {display} class"


def test_every_family_is_named_in_the_api():
    assert set(families.FAMILIES) == {
        "model", "optimizer", "scheduler", "task", "data", "loss", "metric", "callback",
        "hydra_callback", "launcher", "sweeper",
    }  # fmt: skip


def test_unimportable_and_malformed_targets_are_one_line():
    with pytest.raises(ConfigError, match=r"model._target_='nowhere.Model' cannot be imported"):
        families.resolve({"_target_": "nowhere.Model"}, "model", "model")
    with pytest.raises(ConfigError, match=r"is not a dotted class name"):
        families.resolve({"_target_": "os; rm -rf /"}, "model", "model")
    with pytest.raises(ConfigError, match=r"model needs a _target_"):
        families.resolve({"hidden": 3}, "model", "model")


# Classes a user could bring: a parameter typed as a family's class takes a nested node; untyped does not.
class Wrapper(nn.Module):
    def __init__(self, in_features: int, out_features: int, net: nn.Module, scale: float = 1.0) -> None:
        super().__init__()
        self.net, self.scale = net, scale


class NarrowWrapper(nn.Module):
    def __init__(self, net: nn.Linear | None = None) -> None:
        super().__init__()
        self.net = net


class Untyped(nn.Module):
    def __init__(self, in_features, out_features, net=None, layers: list | None = None) -> None:
        super().__init__()


class Weighted(nn.Module):
    def __init__(self, task: str = "binary", weight: float = 1.0) -> None:
        super().__init__()
        self.task, self.weight = task, weight


LINEAR = {"_target_": "torch.nn.Linear", "in_features": 3, "out_features": 2}
IO = ("in_features", "out_features")


def test_nested_target_is_built_where_the_parameter_is_typed_as_a_family_class():
    node = {"_target_": "tests.test_families.Wrapper", "net": LINEAR, "scale": 2.0}
    assert families.check(node, "model", "model", required=IO) is Wrapper
    built = families.build(node, "model", "model", required={"in_features": 3, "out_features": 1})
    assert isinstance(built, Wrapper) and isinstance(built.net, nn.Linear) and built.scale == 2.0
    assert built.net.weight.shape == (2, 3)
    narrow = families.build({"_target_": "tests.test_families.NarrowWrapper", "net": LINEAR}, "model", "m")
    assert isinstance(narrow.net, nn.Linear)


def test_nested_target_is_refused_where_untyped_inside_containers_or_of_the_wrong_class():
    with pytest.raises(ConfigError) as info:
        families.check({"_target_": "tests.test_families.Untyped", "net": LINEAR}, "model", "model", required=IO)
    assert str(info.value).startswith("model.net: a nested _target_ is only allowed where the parameter is typed")
    assert str(info.value).endswith("tests.test_families.Untyped has no parameter typed so")
    with pytest.raises(ConfigError, match=r"model.layers\[0\]: a nested _target_"):
        families.check({"_target_": "tests.test_families.Untyped", "layers": [LINEAR]}, "model", "model", required=IO)
    with pytest.raises(ConfigError, match=r"model.net._target_='torch.nn.ReLU' is not a subclass of"):
        families.check(
            {"_target_": "tests.test_families.NarrowWrapper", "net": {"_target_": "torch.nn.ReLU"}}, "model", "model"
        )
    with pytest.raises(ConfigError, match=r"model.net._target_='os.makedirs' is a function"):
        families.check(
            {"_target_": "tests.test_families.Wrapper", "net": {"_target_": "os.makedirs", "name": "x"}},
            "model",
            "model",
            required=IO,
        )
    with pytest.raises(ConfigError, match=r"optimizer.x is not a parameter of torch.optim.Adam; parameters: lr"):
        families.check({"_target_": "torch.optim.Adam", "x": LINEAR}, "optimizer", "optimizer", required=["params"])
    # A constructor taking **kwargs accepts any key, but not a nested node: its parameter is not typed.
    with pytest.raises(ConfigError) as info:
        node = {"_target_": "tests.test_families.LooseSGD", "x": {"_target_": "os.makedirs", "name": "pwned"}}
        families.check(node, "optimizer", "optimizer", required=["params"])
    assert str(info.value) == (
        "optimizer.x: a nested _target_ is only allowed where the parameter is typed as a class of a family "
        f"({families._FAMILY_NAMES}); tests.test_families.LooseSGD has no parameter typed so"
    )


class LooseSGD(torch.optim.SGD):
    def __init__(self, params, lr: float = 0.1, **kwargs) -> None:
        super().__init__(params, lr=lr)


def test_required_must_be_accepted_and_not_set_offered_only_where_taken():
    with pytest.raises(ConfigError, match=r"must accept in_features \(passed by mlproj\)"):
        families.check(
            {"_target_": "torch.nn.Bilinear", "in1_features": 1, "in2_features": 1}, "model", "model", required=IO
        )
    with pytest.raises(ConfigError, match=r"model.in_features is set by mlproj; do not set it in the config"):
        families.check(dict(LINEAR), "model", "model", required=IO)
    with pytest.raises(
        ConfigError, match=r"loss.wieght is not a parameter of tests.test_families.Weighted; did you mean weight\?"
    ):
        families.check({"_target_": "tests.test_families.Weighted", "wieght": 2}, "loss", "loss")
    with pytest.raises(ConfigError, match=r"loss.weight='heavy': Input should be a valid number"):
        families.check({"_target_": "tests.test_families.Weighted", "weight": "heavy"}, "loss", "loss")
    with pytest.raises(ConfigError, match=r"model is missing required value.*: out_features"):
        families.check({"_target_": "torch.nn.Linear", "in_features": 2}, "model", "model")
    offered = {"task": "multiclass", "num_classes": 3}
    loss = families.build({"_target_": "tests.test_families.Weighted"}, "loss", "loss", offered=offered)
    assert loss.task == "multiclass"  # taken: the constructor has `task`; num_classes it has not, so not passed
    loss = families.build(
        {"_target_": "tests.test_families.Weighted", "task": "binary"}, "loss", "loss", offered=offered
    )
    assert loss.task == "binary"  # the config's own value wins


def test_partial_builds_a_partial_and_positional_args_are_refused():
    node = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1, "_recursive_": False}
    made = families.build(node, "optimizer", "optimizer")
    assert isinstance(made, functools.partial) and made.func is torch.optim.SGD and made.keywords == {"lr": 0.1}
    assert made(nn.Linear(2, 1).parameters()).defaults["lr"] == 0.1
    with pytest.raises(ConfigError, match=r"optimizer._args_: positional arguments are not accepted"):
        families.check({"_target_": "torch.optim.SGD", "_args_": [[]]}, "optimizer", "optimizer")


def test_check_targets_takes_the_defaults_and_refuses_a_function(make_cfg):
    families.check_targets(make_cfg())
    families.check_targets(make_cfg("scheduler=plateau", "model=linear"))
    with pytest.raises(ConfigError) as info:
        families.check_targets(make_cfg("optimizer._target_=torch.hub.load"))
    assert str(info.value) == "optimizer._target_='torch.hub.load' is a function, not a class of torch.optim.Optimizer"
    with pytest.raises(ConfigError, match=r"optimizer.x is not a parameter of torch.optim.Adam"):
        families.check_targets(make_cfg("+optimizer.x._target_=os.makedirs", "+optimizer.x.name=pwned"))


def test_origin_admits_the_code_folder_and_installed_packages_only(tmp_path, monkeypatch):
    code, elsewhere = tmp_path / "code", tmp_path / "cwd"
    for folder in (code, elsewhere):
        folder.mkdir()
    (code / "ownnet.py").write_text("import torch\nclass Net(torch.nn.Linear):\n    pass\n")
    marker = tmp_path / "imported"
    (elsewhere / "evilnet.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nimport torch\nclass Net(torch.nn.Linear):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.syspath_prepend(str(elsewhere))
    assert families.resolve({"_target_": "ownnet.Net"}, "model", "m", origin=code).__name__ == "Net"
    assert families.resolve({"_target_": "torch.nn.Linear"}, "model", "m", origin=code) is nn.Linear
    assert families.resolve({"_target_": "mlproj.models.MLP"}, "model", "m", origin=code).__name__ == "MLP"
    with pytest.raises(ConfigError, match=r"comes from .*evilnet.py, which is neither the model's code folder"):
        families.resolve({"_target_": "evilnet.Net"}, "model", "m", origin=code)
    assert not marker.exists()  # refused before it was imported
    assert families.resolve({"_target_": "evilnet.Net"}, "model", "m").__name__ == "Net"  # no origin: a config
