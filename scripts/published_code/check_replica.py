"""Check our replica of the published code against the published code itself (issue 17).

    python scripts/published_code/check_replica.py WORK_DIR

WORK_DIR is a run folder of run.sh (``/tmp/emm-published/<commit7>-seed<S>-ep<E>``): its patched
snapshot is imported from there (nothing of it is in this project), its CSVs and checkpoints
are read. Prints, for the same weights and inputs:

* each trained model: max |p_published - p_ours| of ``SingleTaskMLP(block3_skipped=True)``
  and both test AUCs;
* EMM: the same for ``EMM.from_trained`` with rung "published"'s settings against
  ``fus_moe_add`` (weights copied from its trained checkpoint, drifted BatchNorm included);
* preprocessing: our ``preprocessing="published"`` Census against its CSVs (train rows).
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

W = sys.argv[1]
sys.path.insert(0, W)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from torch_rechub.basic.features import DenseFeature  # noqa: E402
from torch_rechub.basic.features import SparseFeature as PSparse  # noqa: E402
from torch_rechub.models.multi_task import fus_moe_add, single_task  # noqa: E402

from emm_lib import data as edata  # noqa: E402
from emm_lib import protocol  # noqa: E402
from emm_lib.data.types import FeatureSpec, SparseFeature, Split  # noqa: E402
from emm_lib.emm import EMM  # noqa: E402
from emm_lib.metrics import auc  # noqa: E402
from emm_lib.models import SingleTaskMLP  # noqa: E402

MIRROR = sys.argv[2] if len(sys.argv) > 2 else str(Path(__file__).resolve().parents[3] / "shared/data/census-income-kdd")
d = W + "/data/census-income/"
tr, va, te = (pd.read_csv(d + f"census_income_{s}.csv") for s in ("train", "val", "test"))
data = pd.concat([tr, va, te], axis=0).fillna(0).rename(columns={"income": "cvr_label", "marital status": "ctr_label"})
dense = ['age', 'wage per hour', 'capital gains', 'capital losses', 'divdends from stocks',
         'num persons worked for employer', 'weeks worked in year']
sparse = [c for c in data.columns if c not in dense and c not in ("cvr_label", "ctr_label")]
cards = {c: int(data[c].max()) + 1 for c in sparse}
spec = FeatureSpec(tuple(SparseFeature(c, cards[c]) for c in sparse), tuple(dense))
n0 = len(tr) + len(va)
x = {c: torch.as_tensor(data[c].values[n0:].copy()) for c in sparse + dense}
tasks = ("income", "marital")
split = Split.from_numpy(data[sparse].values[n0:], data[dense].values[n0:], data[["cvr_label", "ctr_label"]].values[n0:], tasks)

# ---------------------------------------------------------------- trained models
res = {}
# single2fus file slots: 1 TM-1 income, 2 TM-1 marital, 3 TM-2 income, 4 TM-2 marital (run.sh)
for slot, (task, block) in {1: ("income", (8, 8)), 2: ("marital", (8, 8)),
                            3: ("income", (16, 8)), 4: ("marital", (16, 8))}.items():
    feats = [PSparse(c, cards[c], embed_dim=4) for c in sparse] + [DenseFeature(c) for c in dense]
    theirs = single_task(feats, ["classification"], hidden_units={"dims": list(block)}, tower_params_list={"dims": [8]})
    st = torch.load(f"{W}/save_dir/single_model_name_{slot}.pth", weights_only=True)
    theirs.load_state_dict(st)
    theirs.eval()
    ours = SingleTaskMLP(spec, task, block=block, n_blocks=3, tower=(8,), embedding_dim=4, block3_skipped=True)
    new = {"embedding.table.weight": torch.cat([st[f"embedding.embed_dict.{c}.weight"] for c in sparse])}
    nl = len(block)
    for b in range(3):
        for i in range(nl):
            for kind, off in (("0", 0), ("1", 1)):
                src = f"mlp{b + 1}.mlp.{4 * i + int(kind)}."
                dst = f"body.{3 * nl * b + 3 * i + off}."
                for k, v in st.items():
                    if k.startswith(src):
                        new[dst + k[len(src):]] = v
    for src, dst in (("tower.mlp.0.", "tower.0."), ("tower.mlp.1.", "tower.1."), ("tower.mlp.4.", "tower.3.")):
        for k, v in st.items():
            if k.startswith(src):
                new[dst + k[len(src):]] = v
    ours.load_state_dict(new)
    ours.eval()
    i = tasks.index(task)
    with torch.no_grad():
        p_theirs = theirs(x)[:, 0]
        p_ours = torch.sigmoid(torch.cat([ours(b) for b in split.batches(8192)]))[:, 0]
    res[slot] = (task, block, float((p_theirs.double() - p_ours.double()).abs().max()),
                 auc(split.y[:, i], p_ours), auc(split.y[:, i], p_theirs.float()))
    print(f"slot {slot} {task} {block}: max |p_theirs - p_ours| = {res[slot][2]:.2e}; test AUC ours {res[slot][3]:.6f} theirs {res[slot][4]:.6f}")

# ---------------------------------------------------------------- preprocessing
# our published_preprocessing vs their CSV (train rows keep the raw order)
ds = edata.load("census", preprocessing="published", cache=False, mirror=MIRROR, data_dir="/tmp/emm-check-data")
ours_dense = ds.train.dense.double().numpy()
their_dense = tr[dense].to_numpy(np.float64)
print("dense max |diff| (train rows):", np.abs(ours_dense - their_dense).max())
bad = []
for j, c in enumerate(sparse):
    pairs = pd.DataFrame({"t": tr[c].to_numpy(), "o": ds.train.sparse[:, j].numpy()}).drop_duplicates()
    if not (pairs.t.is_unique and pairs.o.is_unique):
        bad.append(c)
    if ds.spec.sparse[j].cardinality != cards[c]:
        bad.append(c + " (cardinality)")
print("sparse columns whose codes are not a bijection of theirs:", bad or "none")
print("labels equal (train):", bool((ds.train.y[:, 0].numpy() == tr["income"].to_numpy()).all()),
      bool((ds.train.y[:, 1].numpy() == tr["marital status"].to_numpy()).all()))

# ---------------------------------------------------------------- EMM
feats = [PSparse(c, cards[c], embed_dim=4) for c in sparse] + [DenseFeature(c) for c in dense]
theirs = fus_moe_add(feats, ["classification"] * 2, n_level=3, n_expert_specific=2, expert_params1={"dims": [8, 8]},
                     expert_params2={"dims": [16, 8]}, tower_params_list=[{"dims": [8]}, {"dims": [8]}])
st = torch.load(f"{W}/save_dir/model_mark1_mark2.pth", weights_only=True)
theirs.load_state_dict(st)
theirs.eval()

ps = protocol.apply("published")
trained = {t: [SingleTaskMLP(spec, t, block=b, **ps.single_task) for b in ((8, 8), (16, 8))] for t in tasks}
ours = ps.prepare(EMM.from_trained(trained, n_levels=3, **ps.emm))
new = {k: v.clone() for k, v in ours.state_dict().items()}
new["embedding.table.weight"] = torch.cat([st[f"embedding.embed_dict.{c}.weight"] for c in sparse])
new["frozen_embedding.tables.0"] = st["embedding.embed_dict.sex.weight"]


def copy(src, dst):
    hits = [k for k in st if k.startswith(src)]
    assert hits, src
    for k in hits:
        new[dst + k[len(src):]] = st[k]


for lvl in range(3):
    for s in range(4):
        t, k = divmod(s, 2)  # slot s: task s // 2, model s % 2 (even slots [8,8], odd [16,8])
        for i in range(2):
            copy(f"cgc_layers.{lvl}.experts_specific.{s}.mlp.{4 * i}.", f"levels.{lvl}.components.{t}.{k}.{3 * i}.")
            copy(f"cgc_layers.{lvl}.experts_specific.{s}.mlp.{4 * i + 1}.", f"levels.{lvl}.components.{t}.{k}.{3 * i + 1}.")
    g = f"levels.{lvl}.task_gate."
    for t in range(2):
        p = f"cgc_layers.{lvl}.gates_specific.{t}.mlp."
        new[g + "linear.weight"][t] = st[p + "0.weight"]
        new[g + "linear.bias"][t] = st[p + "0.bias"]
        for b in ("weight", "bias", "running_mean", "running_var"):
            new[g + "norm." + b][2 * t:2 * t + 2] = st[p + "1." + b]
        a = f"cgc_layers.{lvl}.att.{t}."
        new[f"levels.{lvl}.mtm.qkv.weight"][t] = torch.cat([st[a + f"{x}_layer.weight"] for x in "qkv"])
for t in range(2):
    copy(f"towers.{t}.mlp.0.", f"towers.{t}.0.")
    copy(f"towers.{t}.mlp.1.", f"towers.{t}.1.")
    copy(f"towers.{t}.mlp.4.", f"towers.{t}.3.")
ours.load_state_dict(new)
ours.eval()
with torch.no_grad():
    p_theirs = theirs(x)
    p_ours = torch.sigmoid(torch.cat([ours(b) for b in split.batches(8192)]))
print("EMM max |p_theirs - p_ours| =", float((p_theirs - p_ours).abs().max()))
for i, t in enumerate(tasks):
    print(f"  {t}: test AUC ours {auc(split.y[:, i], p_ours[:, i]):.6f} theirs {auc(split.y[:, i], p_theirs[:, i]):.6f}")
print("trainable parameters: ours", sum(p.numel() for p in ours.parameters() if p.requires_grad),
      "theirs", sum(p.numel() for n, p in theirs.named_parameters()
                    if not (n.startswith("cgc_layers") and "experts_specific" in n) and n != "embedding.embed_dict.sex.weight"))
