"""Protocol flags: the authors' published code and the paper's protocol, one deviation at a time.

Every flag is declared once, in :data:`emm_lib.config.PROTOCOL_FLAGS` (what it does,
what it touches); the replay's rungs are :data:`emm_lib.config.RUNGS`. :func:`apply` turns a rung
(or :func:`settings_for` any set of flags) into the keyword arguments the library takes:

    ps = protocol.apply("published")
    ds = data.load("census", **ps.data)                              # preprocessing
    tm = SingleTaskMLP(ds.spec, "income", **sizes, **ps.single_task)  # trained models
    emm = EMM.from_trained(trained, **sizes, **ps.emm)                # fusion model
    model = ps.prepare(model)                                        # every model, once built
    fit(model, ds, **{**profile_fit_kwargs, **ps.fit})               # every model
    row_settings.update(ps.record())                                 # {"rung", "flags"}

The flags are written from EMM-method.md Sec. 6 and the paper; no published code is used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

from emm_lib import config
from emm_lib.data.types import Batch, FeatureSpec
from emm_lib.emm import EMM
from emm_lib.models.base import register_model

__all__ = ["ProtocolSettings", "apply", "settings_for", "rung_flags", "FrozenEmbeddings", "PublishedEMM", "emm_class",
           "RUNG_NAMES"]

RUNG_NAMES: tuple[str, ...] = tuple(name for name, _ in config.RUNGS)
# Flags defined for Census only (its preprocessing, its "sex" feature); on other datasets they
# are dropped and listed in ProtocolSettings.dropped.
_CENSUS_ONLY = ("frozen_sex_embedding", "published_preprocessing")


@dataclass(frozen=True)
class ProtocolSettings:
    """What a rung (a set of flags) means for each part of a run.

    ``fit``: keyword arguments for :func:`emm_lib.train.fit`, merged over the profile's (epochs
    come from the profile: 100 at the paper's settings). ``emm``: for :meth:`EMM.from_trained`.
    ``data``: for :func:`emm_lib.data.load`. ``single_task``: for :class:`SingleTaskMLP`.
    ``init``: what :meth:`prepare` does to a freshly built model (before training).
    ``flags``: the flags in effect (sorted); ``dropped``: asked-for flags that do not apply to
    the dataset (e.g. Census preprocessing on synthetic data).
    """

    rung: str
    flags: tuple[str, ...]
    fit: dict = field(default_factory=dict)
    emm: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    single_task: dict = field(default_factory=dict)
    init: dict = field(default_factory=dict)
    dropped: tuple[str, ...] = ()

    def record(self) -> dict:
        """What goes into a result row's settings: the rung and the sorted flag names."""
        return {"rung": self.rung, "flags": list(self.flags)}

    def prepare(self, model: nn.Module) -> nn.Module:
        """Apply the flags that act on a freshly built model, in place, before its training (no-op
        for ours). Never on a trained model: ``embedding_std`` re-draws its embeddings.

        ``embedding_std``: every :class:`~emm_lib.features.FeatureEmbedding` table re-drawn from
        N(0, std) (``published_embedding_init``). ``mtm_bias=False``: EMM's Q/K/V biases zeroed
        and frozen (``linear_mtm``). Frozen tables (:class:`FrozenEmbeddings`) are not touched.
        """
        from emm_lib.features import FeatureEmbedding

        std = self.init.get("embedding_std")
        if std is not None:
            with torch.no_grad():
                for m in model.modules():
                    if isinstance(m, FeatureEmbedding) and m.table.weight.requires_grad:
                        m.table.weight.normal_(0.0, std)
        if self.init.get("mtm_bias") is False:
            for level in getattr(model, "levels", ()):
                mtm = getattr(level, "mtm", None)
                if mtm is not None:
                    with torch.no_grad():
                        mtm.qkv.bias.zero_()
                    mtm.qkv.bias.requires_grad_(False)
        return model

    def touches(self, part: str) -> tuple[str, ...]:
        """The flags in effect that touch ``part`` ("data", "training", "model_init", "single_task", "emm")."""
        return tuple(f for f in self.flags if config.PROTOCOL_FLAGS[f]["touches"] == part)

    @property
    def trained_model_key(self) -> tuple[str, ...]:
        """Flags that change the trained models: rungs with equal keys can share TM-1/TM-2."""
        return tuple(f for f in self.flags
                     if config.PROTOCOL_FLAGS[f]["touches"] in ("data", "training", "model_init", "single_task"))

    @property
    def baseline_key(self) -> tuple[str, ...]:
        """Flags that change the baselines (MMoE, PLE, ...): rungs with equal keys share them."""
        return tuple(f for f in self.flags if config.PROTOCOL_FLAGS[f]["touches"] in ("data", "training", "model_init"))


def _check_flags(flags: Iterable[str]) -> tuple[str, ...]:
    flags = tuple(flags)
    unknown = sorted(set(flags) - set(config.PROTOCOL_FLAGS))
    if unknown:
        raise ValueError(f"Unknown protocol flag(s) {unknown}. Known flags: {sorted(config.PROTOCOL_FLAGS)}.")
    return tuple(sorted(set(flags)))


def rung_flags(rung: str) -> tuple[str, ...]:
    """The sorted flags of a rung of :data:`emm_lib.config.RUNGS`."""
    for name, flags in config.RUNGS:
        if name == rung:
            return flags
    raise ValueError(f"Unknown rung {rung!r}. Rungs, in order: {list(RUNG_NAMES)}.")


def settings_for(flags: Sequence[str], dataset: str = "census", rung: str = "custom") -> ProtocolSettings:
    """Keyword arguments for any set of flags (``()`` is our protocol)."""
    if isinstance(flags, str):
        raise ValueError(f"flags must be a list of flag names, not the string {flags!r}.")
    on = set(_check_flags(flags))
    dropped = tuple(sorted(f for f in on if f in _CENSUS_ONLY and dataset != "census"))
    on -= set(dropped)
    pub = config.PUBLISHED_CODE
    fit: dict = {}
    if "published_training_loop" in on:
        fit.update(patience=pub["patience"], restore_best=True)
    if "final_epoch_weights" in on:  # takes precedence (config.PROTOCOL_FLAGS)
        fit.update(patience=None, restore_best=False)
    emm: dict = {}
    if "bn_drift" in on:
        emm["bn_drift"] = True
    if "hard_gate" in on:
        emm["fusion"] = "hard"
    init: dict = {}
    if "linear_mtm" in on:
        emm["mtm_activation"] = "none"
        init["mtm_bias"] = False
    if "published_embedding_init" in on:
        init["embedding_std"] = pub["embedding_std"]
    if "frozen_sex_embedding" in on:
        emm["frozen_features"] = tuple(pub["frozen_features"])
    data = {"preprocessing": "published"} if "published_preprocessing" in on else {}
    single = {"block3_skipped": True} if "tm_block3_skipped" in on else {}
    return ProtocolSettings(rung=rung, flags=tuple(sorted(on)), fit=fit, emm=emm, data=data,
                            single_task=single, init=init, dropped=dropped)


def apply(rung: str, dataset: str = "census") -> ProtocolSettings:
    """The settings of a named rung of :data:`emm_lib.config.RUNGS` on ``dataset``."""
    return settings_for(rung_flags(rung), dataset=dataset, rung=rung)


class FrozenEmbeddings(nn.Module):
    """Frozen embedding tables for a few sparse features (flag ``frozen_sex_embedding``).

    The authors' fusion code drops every trained embedding table but one (``sex``), which is
    loaded from the last trained model and frozen (EMM-method.md Sec. 6). Here those features'
    columns of the EMM's embedding output are replaced by lookups in frozen copies of the
    trained tables; the EMM's own rows for them go unused.
    """

    def __init__(self, spec: FeatureSpec, names: Sequence[str], dim: int) -> None:
        super().__init__()
        index = {f.name: j for j, f in enumerate(spec.sparse)}
        names = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in names if n not in index]
        if unknown or len(set(names)) != len(names):
            raise ValueError(f"frozen_features {names} must be distinct sparse features of the spec; "
                             f"unknown: {unknown}; sparse features: {list(index)}.")
        self.names, self.dim = names, dim
        self.columns = [index[n] for n in names]
        self.tables = nn.ParameterList(
            nn.Parameter(torch.zeros(spec.sparse[j].cardinality, dim), requires_grad=False) for j in self.columns)

    def forward(self, x: Tensor, batch: Batch) -> Tensor:
        """x: the embedding output (B, n_sparse*dim + n_dense); the frozen features' columns replaced."""
        x = x.clone()
        d = self.dim
        for j, table in zip(self.columns, self.tables):
            x[:, j * d:(j + 1) * d] = table[batch.sparse[:, j]]
        return x

    @torch.no_grad()
    def copy_from(self, model: nn.Module) -> None:
        """Copy the tables from a trained model's :class:`~emm_lib.features.FeatureEmbedding`."""
        emb = getattr(model, "embedding", None)
        table = getattr(emb, "table", None)
        if table is None or getattr(emb, "dim", None) != self.dim:
            raise ValueError(f"Freezing {self.names} needs the source model to have a FeatureEmbedding of dim "
                             f"{self.dim}; {type(model).__name__} has none that fits.")
        src = [f.name for f in emb.spec.sparse]
        for j, n, dst in zip(self.columns, self.names, self.tables):
            if j >= len(src) or src[j] != n or emb.spec.sparse[j].cardinality != dst.shape[0]:
                raise ValueError(f"The source model's embedding has no feature {n!r} of cardinality "
                                 f"{dst.shape[0]} at column {j}; it was built for another feature spec.")
            start = int(emb.offsets[j])
            dst.copy_(table.weight[start:start + dst.shape[0]].to(dst.device))


@register_model("emm_published")
class PublishedEMM(EMM):
    """:class:`~emm_lib.emm.EMM` with two behaviours of the authors' fusion code (EMM-method.md Sec. 6),
    attached through EMM's hooks; the replay builds it where the flags ask for them.

    ``bn_drift`` (flag ``bn_drift``): frozen components follow the model's train/eval mode, so their
    BatchNorm running statistics drift while the EMM trains (and the reference forward path runs).
    ``frozen_features`` (flag ``frozen_sex_embedding``): these sparse features' embedding columns are
    lookups in frozen copies of the last trained model's tables (:class:`FrozenEmbeddings`).
    """

    def __init__(self, spec: FeatureSpec, tasks: Sequence[str], *, bn_drift: bool = False,
                 frozen_features: Sequence[str] = (), **options) -> None:
        super().__init__(spec, tasks, **options)
        self.bn_drift = bool(bn_drift)
        self.frozen_embedding = (FrozenEmbeddings(spec, frozen_features, self.config["embedding_dim"])
                                 if frozen_features else None)
        if bn_drift:
            self.config["bn_drift"] = True
        if frozen_features:
            self.config["frozen_features"] = list(frozen_features)

    @property
    def frozen_components_in_eval(self) -> bool:  # type: ignore[override]
        return not getattr(self, "bn_drift", False)

    def embed(self, batch: Batch, feature_major: bool = False) -> Tensor:
        if self.frozen_embedding is None:
            return super().embed(batch, feature_major)
        x = self.frozen_embedding(self.embedding(batch), batch)
        return x.t() if feature_major else x

    def trained_models_built(self, models: Sequence[nn.Module]) -> None:
        if self.frozen_embedding is not None:  # the authors' load order ends with the last model
            self.frozen_embedding.copy_from(models[-1])


def emm_class(options: dict) -> type[EMM]:
    """The EMM class for a rung's EMM options: :class:`PublishedEMM` where they replay its behaviours."""
    return PublishedEMM if {"bn_drift", "frozen_features"} & set(options) else EMM
