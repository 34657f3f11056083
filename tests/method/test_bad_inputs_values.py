"""Bad input values (second pass): inputs that built huge structures or gave silently wrong
results. Each case asserts the error type and the words that name the problem, the file and the fix.

Cases: a checkpoint whose JSON asks for a huge structure, Ali CSVs with categorical codes written as
floats, results tables with duplicate or foreign rows, out-of-range or mistyped cells, synthetic
generator arguments, edited processed-cache sidecars, EMM.from_trained with an unrelated spec, and
deconstruct() of modules it cannot cut.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from emm_lib import checkpoint
from emm_lib.study.shared import results, runs, tables
from emm_lib.checkpoint import CheckpointError
from emm_lib.data.types import FeatureSpec, SparseFeature
from emm_lib.data.ali import ALI_CCP, load_ali_ccp
from emm_lib.models import MODEL_REGISTRY, SingleTaskMLP, build_model
from test_data_ali import write_layout


# --------------------------------------------------------------------------- checkpoint structure


def _spec() -> FeatureSpec:
    return FeatureSpec((SparseFeature("s0", 3), SparseFeature("s1", 4)), ("d0",))


def _crafted(tmp_path: Path, model, **config) -> Path:
    """A consistent pair whose config (in the JSON and in the .pt's identity) is edited to ``config``."""
    path = tmp_path / "m"
    checkpoint.save(model, path)
    pt, js = checkpoint.paths(path)
    meta = json.loads(js.read_text())
    meta["config"].update(config)
    js.write_text(json.dumps(meta))
    blob = torch.load(pt, weights_only=True)
    blob["identity"] = json.dumps({k: meta[k] for k in ("model", "tasks", "spec", "config")}, sort_keys=True)
    torch.save(blob, pt)
    return path


def _never_built(monkeypatch, name: str) -> None:
    def refuse(*a, **k):
        raise AssertionError(f"load() started building {name} from a config it should have refused")
    monkeypatch.setitem(MODEL_REGISTRY, name, refuse)


def test_checkpoint_with_huge_block_count_is_refused_before_building(tmp_path, monkeypatch):
    tiny = SingleTaskMLP(_spec(), "t1", block=(1,), n_blocks=1, tower=(1,))
    path = _crafted(tmp_path, tiny, n_blocks=10_000_000)
    assert sum(p.stat().st_size for p in checkpoint.paths(path)) < 20_000  # a few KB ask for 10 M blocks
    _never_built(monkeypatch, "single_task")
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"'n_blocks' = 10,000,000.*bound: \d+") as err:
        checkpoint.load(path)
    assert time.perf_counter() - start < 10  # fails fast: nothing was built (it took 25 s at 100,000 blocks)
    assert "m.json" in str(err.value) and "restore the pair or retrain" in str(err.value)


@pytest.mark.parametrize("name, sizes, edit, field", [
    ("single_task", dict(block=[1], n_blocks=1, tower=[1]), dict(block=[1] * 100_000), "block"),
    ("single_task", dict(block=[1], n_blocks=1, tower=[1]), dict(tower=[1] * 100_000), "tower"),
    ("ple", dict(n_levels=1, n_specific=1, n_shared=1, expert=[1], tower=[1]), dict(n_levels=1_000_000), "n_levels"),
    ("adatt", dict(n_levels=1, n_specific=1, n_shared=1, expert=[1], tower=[1]), dict(n_levels=1_000_000), "n_levels"),
    ("mmoe", dict(n_experts=1, expert=[1], tower=[1]), dict(n_experts=10 ** 12), "n_experts"),
    ("shared_bottom", dict(bottom=[1], tower=[1]), dict(bottom=[10 ** 12]), "bottom"),
    ("emm", dict(component_shapes=[[1]], n_levels=1, tower=[1]), dict(n_levels=1_000_000), "n_levels"),
])
def test_checkpoint_structure_is_bounded_for_every_architecture(tmp_path, monkeypatch, name, sizes, edit, field):
    model = build_model(name, _spec(), ["a", "b"] if name != "single_task" else ["a"], **sizes)
    path = _crafted(tmp_path, model, **edit)
    _never_built(monkeypatch, name)
    with pytest.raises(CheckpointError, match=rf"'{field}' = .*bound: [\d,]+"):
        checkpoint.load(path)


def test_checkpoint_with_huge_emm_component_list_is_refused(tmp_path, monkeypatch):
    model = build_model("emm", _spec(), ["a", "b"], component_shapes=[[1]], n_levels=1, tower=[1])
    layers = {t: models * 5_000 for t, models in model.config["component_layers"].items()}
    path = _crafted(tmp_path, model, component_layers=layers)
    _never_built(monkeypatch, "emm")
    with pytest.raises(CheckpointError, match=r"'component_layers' = 10,000 components.*bound: \d+"):
        checkpoint.load(path)


def test_checkpoint_with_huge_task_list_is_refused(tmp_path, monkeypatch):
    model = build_model("aitm", _spec(), ["a", "b"], bottom=[1], tower=[1])
    path = _crafted(tmp_path, model)
    pt, js = checkpoint.paths(path)
    meta = json.loads(js.read_text())
    meta["tasks"] = [f"t{i}" for i in range(100_000)]
    js.write_text(json.dumps(meta))
    blob = torch.load(pt, weights_only=True)
    blob["identity"] = json.dumps({k: meta[k] for k in ("model", "tasks", "spec", "config")}, sort_keys=True)
    torch.save(blob, pt)
    _never_built(monkeypatch, "aitm")
    with pytest.raises(CheckpointError, match=r"'tasks' = 100,000 tasks.*bound"):
        checkpoint.load(path)


@pytest.mark.parametrize("label", ["tm1", "tm2", "shared_bottom", "mmoe", "ple", "aitm", "adatt", "emm"])
def test_checkpoint_bounds_leave_the_studys_models_loadable(tmp_path, label):
    from emm_lib import config

    for dataset in ("census", "aliexpress"):
        name = "single_task" if label.startswith("tm") else label
        model = build_model(name, _spec(), ["a"] if name == "single_task" else ["a", "b", "c"],
                            **config.model_settings(dataset, label))
        checkpoint.save(model, tmp_path / dataset)
        assert checkpoint.load(tmp_path / dataset).config == model.config


def test_malformed_structure_fields_are_named(tmp_path):
    model = SingleTaskMLP(_spec(), "t1", block=(2,), n_blocks=1, tower=(1,))
    with pytest.raises(CheckpointError, match=r"config field 'n_blocks' must be an integer >= 0, got 'many'"):
        checkpoint.load(_crafted(tmp_path, model, n_blocks="many"))
    with pytest.raises(CheckpointError, match=r"config field 'block' must be a list of widths, got str"):
        checkpoint.load(_crafted(tmp_path, model, block="wide"))


# --------------------------------------------------------------------------- Ali CSVs: codes as floats


def _as_floats(split: str, df: pd.DataFrame, value=None) -> pd.DataFrame:
    """The test file's categorical codes written as floats (``9.0``), or one cell set to ``value``."""
    if split == "test":
        for c in ALI_CCP.sparse:
            df[c] = df[c].astype(float)
        if value is not None:
            df.loc[3, ALI_CCP.sparse[2]] = value
    return df


def test_ali_categorical_codes_written_as_floats_read_as_the_same_codes(tmp_path):
    ints = load_ali_ccp(write_layout(tmp_path / "ints", ALI_CCP))
    floats = load_ali_ccp(write_layout(tmp_path / "floats", ALI_CCP, tweak=_as_floats))
    written = pd.read_csv(tmp_path / "floats" / "ali_ccp_test.csv", dtype=str)[ALI_CCP.sparse[0]]
    assert written.str.endswith(".0").all()
    assert bool((floats.test.sparse > 0).all())  # no code reads as "unseen in training"
    assert torch.equal(floats.test.sparse, ints.test.sparse) and floats.spec == ints.spec


def test_ali_non_integral_categorical_code_is_refused(tmp_path):
    folder = write_layout(tmp_path, ALI_CCP, tweak=lambda s, df: _as_floats(s, df, 2.5))
    with pytest.raises(ValueError, match=r"ali_ccp_test.csv.*column '122'.*not whole-number codes.*'2.5'.*line 5"):
        load_ali_ccp(folder)


# --------------------------------------------------------------------------- results tables


def _table(tmp_path: Path, values=(0.849, 0.851, 0.850), **edit) -> Path:
    """A results CSV of one model over three seeds (written with make_rows/append), then cells edited:
    ``edit`` maps (line, column) pairs to new cell text."""
    path = tmp_path / "table1.csv"
    for seed, v in enumerate(values):
        results.append(path, results.make_rows(dataset="census", profile="default", model="emm", seed=seed,
                                               metrics={"test_auc": {"income": v}}, best_epoch=2, train_seconds=1.0))
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for (line, col), text in edit.get("cells", {}).items():
        df.loc[line - 2, col] = text
    for row in edit.get("extra", []):
        df = pd.concat([df, pd.DataFrame([{**df.iloc[0].to_dict(), **row}])], ignore_index=True)
    df.to_csv(path, index=False)
    return path


def test_foreign_row_of_another_profile_is_refused_not_summarized(tmp_path):
    path = _table(tmp_path, extra=[dict(profile="paper", seed="0", value="0.149")])
    with pytest.raises(ValueError, match=r"table1.csv mixes rows of run profiles .*'paper'.*line 5.*"
                                         r"results/<profile>/"):
        results.read(path)
    df = pd.read_csv(path)  # read around the reader: summarize itself refuses the mix
    with pytest.raises(ValueError, match=r"summarize\('test_auc'\) mixes rows of run profiles"):
        tables.summarize(df)


def test_duplicate_run_rows_are_refused_not_last_wins(tmp_path):
    path = _table(tmp_path, extra=[dict(seed="0", value="0.149")])
    with pytest.raises(ValueError, match=r"table1.csv: lines \[2, 5\] hold the same run .*seed=0.*\[0.849, 0.149\].*"
                                         r"Delete the wrong line"):
        results.read(path)
    with pytest.raises(ValueError, match=r"summarize.*rows for one run .*seed=0.*disagree.*Keep one row per run"):
        tables.summarize(pd.read_csv(path))
    exact = pd.read_csv(_table(tmp_path / "exact"))
    again = tables.summarize(pd.concat([exact, exact.iloc[:1]]))  # the same row twice counts once
    assert again["n"].tolist() == [3] and again["mean"].iloc[0] == pytest.approx(0.85)


@pytest.mark.parametrize("line, column, text, words", [
    (3, "value", "1.7", r"column 'value' at line 3 holds 1.7; a test_auc value lies in \[0, 1\]"),
    (4, "value", "-0.2", r"column 'value' at line 4 holds -0.2; a test_auc value lies in"),
    (2, "value", "abc", r"column 'value' at line 2 holds 'abc'; it must be a finite number"),
    (2, "value", "inf", r"column 'value' at line 2 holds inf; it must be a finite number"),
    (3, "seed", "x", r"column 'seed' at line 3 holds 'x'; it must be a whole number"),
    (3, "seed", "1.5", r"column 'seed' at line 3 holds 1.5; it must be a whole number"),
    (3, "seed", "-1", r"column 'seed' at line 3 holds -1; it must be >= 0"),
    (2, "best_epoch", "two", r"column 'best_epoch' at line 2 holds 'two'; it must be a whole number \(or empty\)"),
    (2, "train_seconds", "-3", r"column 'train_seconds' at line 2 holds -3.0; it must be >= 0"),
])
def test_results_cells_of_wrong_type_or_range_are_named_on_read(tmp_path, line, column, text, words):
    path = _table(tmp_path, cells={(line, column): text})
    with pytest.raises(ValueError, match=r"table1.csv: " + words + r".*fix or delete those rows"):
        results.read(path)


def test_bad_seed_cell_is_named_instead_of_a_misleading_duplicate_run(tmp_path):
    path = _table(tmp_path, cells={(3, "seed"): "x"})
    with pytest.raises(ValueError, match=r"column 'seed' at line 3 holds 'x'") as err:
        runs.is_done(path, "census", "emm", 1, identity={})
    assert not isinstance(err.value, results.DuplicateRun)
    with pytest.raises(ValueError, match=r"column 'seed' at line 3 holds 'x'"):
        results.append(path, results.make_rows(dataset="census", profile="default", model="emm", seed=1,
                                               metrics={"test_auc": {"income": 0.8}}))


def test_summarize_names_a_value_that_is_not_a_number(tmp_path):
    df = pd.read_csv(_table(tmp_path, cells={(3, "value"): "abc"}))  # read around results.read
    with pytest.raises(ValueError, match=r"summarize\('test_auc'\): row 1 holds value 'abc', not a number.*"
                                         r"results\.read"):
        tables.summarize(df)


def test_every_committed_results_table_reads_and_summarizes_cleanly():
    files = [p for p in sorted(Path(__file__).resolve().parents[2].glob("results/**/*.csv"))
             if set(results.COLUMNS) <= set(p.open().readline().strip().split(","))]
    assert files, "no committed results tables found"
    for path in files:
        df = results.read(path)
        for metric in df.metric.unique():
            assert tables.summarize(df, metric)["n"].min() >= 1, path


def test_clean_results_read_with_numeric_types(tmp_path):
    df = results.read(_table(tmp_path))
    assert df.seed.dtype == "int64" and df.value.dtype == "float64" and df.best_epoch.dtype == "int64"
    assert tables.summarize(df)["n"].tolist() == [3]


# --------------------------------------------------------------------------- synthetic generator arguments


@pytest.mark.parametrize("kwargs, words", [
    (dict(noise=float("nan")), r"noise must be a finite number, got nan"),
    (dict(noise=float("inf")), r"noise must be a finite number, got inf"),
    (dict(noise=-0.1), r"noise must lie in \[0, inf\], got -0.1"),
    (dict(correlation=float("nan")), r"correlation must be a finite number"),
    (dict(n_rows=1000.5), r"n_rows must be a whole number \(int\), got 1000.5"),
    (dict(n_rows="1000"), r"n_rows must be a whole number \(int\), got '1000'"),
    (dict(cardinality=2.5), r"cardinality must be a whole number \(int\), got 2.5"),
    (dict(seed=-1), r"Need seed >= 0, got -1"),
    (dict(n_tasks=2.0), r"n_tasks must be a whole number \(int\), got 2.0"),
    (dict(val_frac="0.1"), r"val_frac must be a number, got '0.1'"),
])
def test_synthetic_generator_arguments_are_checked_up_front(kwargs, words):
    from emm_lib.data.synthetic import make_synthetic

    with pytest.raises(ValueError, match=words):
        make_synthetic(n_rows=kwargs.pop("n_rows", 300), **kwargs)


@pytest.mark.parametrize("kwargs, words", [
    (dict(noise=float("nan")), r"noise must be a finite number"),
    (dict(n_train=1000.5), r"n_train must be a whole number \(int\)"),
    (dict(cardinality=(3, 2.5)), r"cardinality\[1\] must be a whole number \(int\), got 2.5"),
    (dict(n_val="10"), r"n_val must be a whole number \(int\)"),
])
def test_streamed_generator_arguments_are_checked_up_front(kwargs, words):
    from emm_lib.data.synthetic_stream import make_streamed

    with pytest.raises(ValueError, match=words):
        make_streamed(**{"n_train": 500, "n_sparse": 2, "n_dense": 1, "pilot_rows": 1000, **kwargs})


# --------------------------------------------------------------------------- processed-cache sidecar


@pytest.mark.parametrize("edit", [
    lambda m: m["spec"]["sparse"][0].__setitem__(0, "renamed"),  # a feature name
    lambda m: m["spec"].__setitem__("dense", ["other"]),          # the dense columns
    lambda m: m["info"].__setitem__("positive_rate", 0.9),        # info shown to the reader
])
def test_edited_processed_cache_sidecar_is_a_cache_miss(tmp_path, edit):
    from emm_lib.data import census
    from emm_lib.data.types import Split

    g = torch.Generator().manual_seed(0)
    mk = lambda n: Split(torch.randint(0, 3, (n, 2), generator=g), torch.rand(n, 1, generator=g),  # noqa: E731
                         torch.randint(0, 2, (n, 2), generator=g).float(), ("income", "marital"))
    spec = FeatureSpec((SparseFeature("a", 3), SparseFeature("b", 3)), ("d",))
    path = tmp_path / "processed" / "census-x.pt"
    census._save(path, {"train": mk(20), "val": mk(10), "test": mk(10)},
                 {"tasks": ["income", "marital"], "spec": spec.to_dict(),
                  "info": {"rows": {"train": 20, "val": 10, "test": 10}, "positive_rate": 0.1}})
    meta, _ = census._load(path, ("income", "marital"))
    assert meta["spec"] == spec.to_dict()
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    edit(meta)
    side.write_text(json.dumps(meta, indent=1, sort_keys=True))
    with pytest.warns(UserWarning, match=r"census-x\.pt: its sidecar census-x\.json does not hash.*Rebuilding"):
        assert census._load(path, ("income", "marital")) is None


# --------------------------------------------------------------------------- EMM.from_trained: specs


def _renamed(spec: FeatureSpec) -> FeatureSpec:
    """Another data set's spec with the same input width: other feature names, same counts."""
    return FeatureSpec(tuple(SparseFeature(f"other_{f.name}", f.cardinality) for f in spec.sparse),
                       tuple(f"other_{d}" for d in spec.dense))


def test_from_trained_bodies_with_an_unrelated_spec_of_the_same_width_are_refused():
    from emm_lib.emm import EMM
    from helpers import make_tiny_dataset

    ds = make_tiny_dataset(2, 60)
    trained = {t: [SingleTaskMLP(ds.spec, t, block=(8,), n_blocks=2)] for t in ds.tasks}
    bodies = {t: [m.body for m in ms] for t, ms in trained.items()}
    assert EMM.from_trained(bodies, spec=ds.spec).spec == ds.spec  # the bodies' own spec: fine
    with pytest.raises(ValueError, match=r"trained model a/0: the model's feature spec does not match.*sparse "
                                         r"features differ"):
        EMM.from_trained(bodies, spec=_renamed(ds.spec))


def test_from_trained_hand_made_bodies_without_a_spec_are_refused():
    from emm_lib.emm import EMM
    from emm_lib.models import mlp
    from helpers import make_tiny_dataset

    ds = make_tiny_dataset(2, 60)
    width = ds.spec.n_sparse * 4 + ds.spec.n_dense
    bare = {t: [mlp(width, [8, 8])] for t in ds.tasks}
    with pytest.raises(ValueError, match=r"trained model\(s\) \['a/0', 'b/0'\] carry no feature spec.*body\.spec = "):
        EMM.from_trained(bare, spec=ds.spec)
    for t in ds.tasks:  # stating what each body was trained on makes it usable
        bare[t][0].spec = ds.spec
    assert EMM.from_trained(bare, spec=ds.spec).tasks == ds.tasks


# --------------------------------------------------------------------------- deconstruct: unsupported modules


@pytest.mark.parametrize("model, found", [
    (torch.nn.Identity(), r"model 0 has no layers \(e\.g\. nn\.Identity\)"),
    (torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LSTM(8, 8)),
     r"model 0: layer 1 is LSTM, which deconstruct cannot cut \(it returns a tuple"),
    (torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Dropout(0.1)),
     r"no weighted layer to cut at \(found: ReLU, Dropout\)"),
])
def test_deconstruct_names_what_it_supports_and_what_it_found(model, found):
    from emm_lib.deconstruct import deconstruct

    with pytest.raises(ValueError, match=found + r".*needs layers that each take one tensor and return one "
                                                 r"tensor.*Linear"):
        deconstruct([model])


def test_deconstruct_names_a_layer_that_returns_no_tensor():
    from emm_lib.deconstruct import deconstruct

    class Pair(torch.nn.Module):  # not a known type, returns a tuple like a recurrent layer
        def forward(self, x):
            return x, x

    body = torch.nn.Sequential(torch.nn.Linear(4, 8), Pair(), torch.nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"model 0: layer 1 \(Pair\) returns a tuple, not a tensor.*Found: Linear, "
                                         r"Pair, Linear"):
        deconstruct([body])
    wrong = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(5, 2))
    with pytest.raises(ValueError, match=r"layer 1 \(Linear\) fails on the output of the layer before it, shape "
                                         r"\(2, 8\)"):
        deconstruct([wrong])
    with pytest.raises(ValueError, match=r"layer 0 \(Conv1d\) fails on the input \(example_input"):
        deconstruct([torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3))], example_input=torch.zeros(2, 4))
